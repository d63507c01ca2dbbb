"""Other engines read what phlo writes, and phlo reads what they write: PyIceberg both ways on
one catalog file, DuckDB on the data files."""

from __future__ import annotations

import datetime as dt
import sqlite3

import duckdb
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import DayTransform
from pyiceberg.types import DoubleType, LongType, NestedField, StringType, TimestamptzType
from tests.conftest import make_events

import phlo


def pyiceberg_catalog(lh: phlo.Lakehouse) -> SqlCatalog:
    return SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)


def rows(table: pa.Table) -> list[dict]:
    return sorted(
        table.select(["id", "ts", "category", "value"]).to_pylist(), key=lambda r: r["id"]
    )


def test_pyiceberg_reads_a_phlo_table(lh, events_table):
    events_table.append(make_events(0, 40))
    events_table.append(make_events(40, 20))
    table = pyiceberg_catalog(lh).load_table("raw.events")
    assert rows(table.scan().to_arrow()) == rows(events_table.scan().to_arrow())
    # Iceberg metadata does not order its snapshot list; the sequence number does.
    pyiceberg_history = sorted(table.snapshots(), key=lambda s: s.sequence_number)
    assert [s.snapshot_id for s in pyiceberg_history] == [
        s.snapshot_id for s in events_table.history()
    ]
    assert table.spec().fields[0].name == "ts_day"
    # Every snapshot phlo wrote is readable on its own.
    first = events_table.history()[0].snapshot_id
    assert table.scan(snapshot_id=first).to_arrow().num_rows == 40
    # PyIceberg's own pruning works on phlo's partition values and column stats.
    filtered = table.scan(row_filter="id >= 50").to_arrow()
    assert sorted(filtered.column("id").to_pylist()) == list(range(50, 60))


def test_phlo_reads_a_pyiceberg_table_and_both_keep_writing(lh):
    catalog = pyiceberg_catalog(lh)
    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "ts", TimestamptzType()),
        NestedField(3, "category", StringType()),
        NestedField(4, "value", DoubleType()),
    )
    spec = PartitionSpec(PartitionField(2, 1000, DayTransform(), "ts_day"))
    pyi_table = catalog.create_table("raw.from_pyiceberg", schema=schema, partition_spec=spec)
    pyi_table.append(make_events(0, 30))

    table = lh.table("raw.from_pyiceberg")
    assert lh.tables("raw") == ["raw.from_pyiceberg"]
    assert rows(table.scan().to_arrow()) == rows(make_events(0, 30))
    assert table.scan(filter=("ts", "<", dt.datetime(2024, 1, 2, tzinfo=dt.UTC))).files_scanned == 1

    table.append(make_events(30, 10))  # phlo commits on top of PyIceberg's snapshot
    pyi_table = catalog.load_table("raw.from_pyiceberg")
    assert pyi_table.scan().to_arrow().num_rows == 40
    pyi_table.append(make_events(40, 5))  # and PyIceberg on top of phlo's
    written = pa.concat_tables([make_events(0, 30), make_events(30, 10), make_events(40, 5)])
    assert rows(table.scan().to_arrow()) == rows(written)
    assert [s.operation for s in table.history()] == ["append"] * 3


def test_duckdb_reads_the_data_files(lh, events_table):
    events_table.append(make_events(0, 25))
    data = lh.root / "warehouse" / "raw.db" / "events" / "data"
    result = duckdb.sql(
        f"SELECT count(*), sum(id), count(DISTINCT category) FROM read_parquet('{data}/**/*.parquet')"
    ).fetchall()[0]
    assert result == (25, sum(range(25)), 3)


def test_an_old_catalog_file_is_upgraded_in_place(tmp_path):
    # A catalog created by an older PyIceberg: no iceberg_type column.
    path = tmp_path / "catalog.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """CREATE TABLE iceberg_tables (catalog_name VARCHAR(255) NOT NULL,
               table_namespace VARCHAR(255) NOT NULL, table_name VARCHAR(255) NOT NULL,
               metadata_location VARCHAR(1000), previous_metadata_location VARCHAR(1000),
               PRIMARY KEY (catalog_name, table_namespace, table_name));"""
        )
    lh = phlo.Lakehouse.open(tmp_path)
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(iceberg_tables)")]
    assert "iceberg_type" in columns
    lh.create_namespace("raw")
    lh.create_table("raw.t", {"id": pa.int64()}).append([{"id": 1}])
    assert pyiceberg_catalog(lh).load_table("raw.t").scan().to_arrow().num_rows == 1


@pytest.mark.parametrize("n", [1, 3])
def test_concurrent_phlo_and_pyiceberg_appends_all_land(lh, events_table, n):
    pyi = pyiceberg_catalog(lh)
    for i in range(n):
        events_table.append(make_events(i * 100, 10))
        pyi.load_table("raw.events").append(make_events(i * 100 + 50, 10))
    assert events_table.scan().to_arrow().num_rows == 20 * n
