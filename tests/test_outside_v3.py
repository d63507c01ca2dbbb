"""Format-v3 tables other engines write. Columns of the v3 types phlo's Iceberg library cannot
parse (variant, unknown, geometry, geography: Spark and Java write them) make every read,
write and maintenance run a `SchemaError` naming the column and its type, nothing changed or
deleted. A v3 table DuckDB wrote with nanosecond timestamps reads value for value, and phlo's
writes to it are refused (deletion vectors: tests/test_duckdb_interop.py)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from tests.duckdb_support import duckdb_rest

import phlo
from phlo.catalog_server import CatalogServer
from phlo.errors import InputError, SchemaError

UNSUPPORTED = {
    "variant": "variant",
    "geometry": "geometry(srid:4326)",
    "unknown": {"type": "list", "element-id": 3, "element": "unknown", "element-required": False},
}

USES: dict[str, Callable[[phlo.Lakehouse], object]] = {
    "scan": lambda lh: lh.table("raw.t").scan().to_arrow(),
    "append": lambda lh: lh.table("raw.t").append(pa.table({"id": pa.array([9], pa.int64())})),
    "merge": lambda lh: lh.table("raw.t").merge(pa.table({"id": pa.array([1], pa.int64())}), "id"),
    "compaction": lambda lh: lh.table("raw.t").compact(),
    "expiry": lambda lh: lh.expire_snapshots(older_than=dt.timedelta(0), keep_last=1),
    "orphan removal": lambda lh: lh.remove_orphan_files(older_than=dt.timedelta(0)),
}


def with_v3_column(lh: phlo.Lakehouse, kind: object) -> None:
    """Makes raw.t's current metadata the v3 table another engine would leave after adding
    column `x` of `kind` (rewritten in place: the catalog keeps pointing at it)."""
    path = Path(lh.table("raw.t").metadata_location.removeprefix("file://"))
    metadata = json.loads(path.read_text())
    metadata["format-version"] = 3
    metadata["next-row-id"] = 0
    for schema in metadata["schemas"]:
        schema["fields"].append({"id": 2, "name": "x", "required": False, "type": kind})
    metadata["last-column-id"] = 3
    path.write_text(json.dumps(metadata))


@pytest.mark.parametrize("kind", list(UNSUPPORTED))
def test_v3_types_phlo_cannot_parse_are_refused_naming_the_column(tmp_path: Path, kind: str):
    catalog, warehouse = f"sqlite:///{tmp_path}/c.db", f"file://{tmp_path}/warehouse"
    lh = phlo.Lakehouse.connect(catalog=catalog, warehouse=warehouse)
    lh.create_namespace("raw")
    table = lh.create_table("raw.t", {"id": pa.int64()})
    for i in range(2):
        table.append(pa.table({"id": pa.array([i], pa.int64())}))
    with_v3_column(lh, UNSUPPORTED[kind])
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file() and "c.db" not in p.name)
    # A new connection: the metadata is read afresh.
    lh = phlo.Lakehouse.connect(catalog=catalog, warehouse=warehouse)
    for name, use in USES.items():
        with pytest.raises(SchemaError, match=f"column x.* has the Iceberg type {kind}") as e:
            use(lh)
        assert "phlo cannot read" in str(e.value), name
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file() and "c.db" not in p.name) == files


def test_a_v3_table_of_duckdb_reads_nanoseconds_exactly_and_refuses_writes(lh: phlo.Lakehouse):
    with CatalogServer(lh, port=0) as server:
        duckdb_rest(
            server.uri,
            "main",
            [
                "CREATE TABLE lake.raw.t (id BIGINT, t TIMESTAMP_NS) WITH ('format-version' = '3')",
                "INSERT INTO lake.raw.t VALUES (1, TIMESTAMP_NS '2024-01-01 00:00:00.123456789')",
            ],
        )
    table = lh.table("raw.t")
    got = table.scan().to_arrow()
    assert got.schema.field("t").type == pa.timestamp("ns")
    assert got.column("t").cast(pa.int64()).to_pylist() == [1704067200123456789]
    location = table.metadata_location
    with pytest.raises(InputError, match="format v3"):
        table.append(pa.table({"id": pa.array([2], pa.int64())}))
    assert lh.table("raw.t").metadata_location == location
