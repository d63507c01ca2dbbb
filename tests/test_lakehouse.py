"""Tables from Python: create, append from every Arrow-like source, scan with pruning, history,
time travel."""

from __future__ import annotations

import datetime as dt
import time

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.conftest import EVENTS_SCHEMA, make_events

import phlo


def sorted_ids(table: pa.Table) -> list[int]:
    return sorted(table.column("id").to_pylist())


def test_open_creates_catalog_and_warehouse(tmp_path):
    lh = phlo.Lakehouse.open(tmp_path / "lake")
    assert (tmp_path / "lake" / "catalog.db").is_file()
    assert (tmp_path / "lake" / "warehouse").is_dir()
    assert lh.warehouse == f"file://{(tmp_path / 'lake' / 'warehouse').resolve()}"
    # Reopening sees the same catalog.
    lh.create_namespace("raw")
    assert phlo.Lakehouse.open(tmp_path / "lake").namespaces() == ["raw"]


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda t: t, id="pyarrow-table"),
        pytest.param(lambda t: t.to_batches()[0], id="pyarrow-batch"),
        pytest.param(
            lambda t: pa.RecordBatchReader.from_batches(t.schema, t.to_batches()), id="reader"
        ),
        pytest.param(pl.from_arrow, id="polars"),
        pytest.param(lambda t: t.to_pandas(), id="pandas"),
        pytest.param(lambda t: t.to_pylist(), id="list-of-dicts"),
        pytest.param(lambda t: duckdb.from_arrow(t), id="duckdb-relation"),
    ],
)
def test_round_trip_from_every_arrow_like_source(events_table, convert):
    data = make_events(0, 50)
    result = events_table.append(convert(data))
    assert result.rows == 50
    assert result.files_added == 3  # one per day partition
    assert result.bytes_written > 0
    back = events_table.scan().to_arrow().sort_by("id")
    assert back.num_rows == 50
    assert back.column("id").to_pylist() == data.column("id").to_pylist()
    assert back.column("ts").to_pylist() == data.column("ts").to_pylist()
    assert back.column("category").to_pylist() == data.column("category").to_pylist()
    assert back.column("value").to_pylist() == data.column("value").to_pylist()


def test_scan_helpers_return_each_library_type(events_table):
    events_table.append(make_events(0, 30))
    assert isinstance(events_table.scan().to_polars(), pl.DataFrame)
    frame = events_table.scan().to_pandas()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 30
    assert sum(b.num_rows for b in events_table.scan(batch_size=7).to_batches()) == 30
    # Any Arrow consumer reads a scan through the PyCapsule stream.
    assert pl.from_arrow(pa.RecordBatchReader.from_stream(events_table.scan())).height == 30


def test_columns_are_cast_to_the_table_schema(events_table):
    narrow = pa.table(
        {
            "id": pa.array([1, 2], pa.int32()),
            "ts": pa.array(
                [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)], pa.timestamp("ns", "UTC")
            ),
            "value": pa.array([1.5, 2.5], pa.float32()),
        }
    )
    events_table.append(narrow)
    back = events_table.scan().to_arrow().sort_by("id")
    assert back.schema.field("id").type == pa.int64()
    assert back.column("category").null_count == 2  # optional column filled with nulls
    assert back.column("value").to_pylist() == [1.5, 2.5]


def test_partition_pruning_is_observable(events_table):
    for day in range(3):
        events_table.append(
            make_events(day * 100, 100, days=1).set_column(
                1,
                "ts",
                pa.array(
                    [dt.datetime(2024, 1, 1 + day, tzinfo=dt.UTC)] * 100, pa.timestamp("us", "UTC")
                ),
            )
        )
    everything = events_table.scan()
    assert (everything.files_scanned, everything.files_total) == (3, 3)

    one_day = events_table.scan(
        filter=(
            "ts",
            "between",
            (dt.datetime(2024, 1, 2, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, 23, tzinfo=dt.UTC)),
        )
    )
    assert one_day.files_scanned == 1 < one_day.files_total
    assert len(one_day.data_files) == 1 and set(one_day.data_files) < set(everything.data_files)
    assert sorted_ids(pq.read_table(one_day.data_files[0].removeprefix("file://"))) == list(
        range(100, 200)
    )
    assert sorted_ids(one_day.to_arrow()) == list(range(100, 200))

    # Min/max pruning on a non-partition column, and exact row filtering.
    by_id = events_table.scan(columns=["id"], filter=[("id", ">=", 150), ("id", "<", 160)])
    assert by_id.files_scanned == 1
    result = by_id.to_arrow()
    assert result.column_names == ["id"]
    assert sorted_ids(result) == list(range(150, 160))

    assert sorted_ids(events_table.scan(filter=("id", "in", [5, 105, 999])).to_arrow()) == [5, 105]
    only_a = events_table.scan(filter=("category", "=", "a")).to_arrow()
    assert only_a.num_rows == 3 * 34 and set(only_a.column("category").to_pylist()) == {"a"}
    assert events_table.scan(filter=("category", "is null")).to_arrow().num_rows == 0


def test_history_and_time_travel(events_table):
    first = events_table.append(make_events(0, 10))
    time.sleep(0.01)
    between = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    second = events_table.append(make_events(10, 5))

    history = events_table.history()
    assert [s.snapshot_id for s in history] == [first.snapshot_id, second.snapshot_id]
    assert history[1].parent_id == first.snapshot_id
    assert history[1].operation == "append"
    assert history[1].summary["added-records"] == "5"
    assert history[1].summary["total-records"] == "15"
    assert events_table.current_snapshot_id == second.snapshot_id

    assert events_table.scan(snapshot_id=first.snapshot_id).to_arrow().num_rows == 10
    assert events_table.scan(as_of=between).to_arrow().num_rows == 10
    assert events_table.scan(as_of=between.isoformat()).to_arrow().num_rows == 10
    assert events_table.scan().to_arrow().num_rows == 15


def test_schema_and_partition_spec(lh):
    table = lh.create_table(
        "raw.orders",
        {
            "order_id": pa.string(),
            "placed": pa.timestamp("us"),
            "region": pa.string(),
            "n": pa.int16(),
        },
        partition_by=["month(placed)", "region", "bucket(4, order_id)"],
    )
    assert table.schema.names == ["order_id", "placed", "region", "n"]
    assert table.schema.field("n").type == pa.int32()
    assert table.schema.field("placed").type == pa.timestamp("us")
    assert [(p.name, p.source_column, p.transform) for p in table.partition_spec] == [
        ("placed_month", "placed", "month"),
        ("region", "region", "identity"),
        ("order_id_bucket", "order_id", "bucket[4]"),
    ]
    table.append([{"order_id": "x1", "placed": dt.datetime(2024, 5, 1), "region": "eu", "n": 3}])
    assert table.scan(filter=("placed", ">=", dt.date(2024, 5, 1))).to_arrow().num_rows == 1
    assert table.scan(filter=("placed", "<", dt.date(2024, 5, 1))).files_scanned == 0


@pytest.mark.parametrize("transform", ["year", "month", "day", "hour", "identity"])
def test_time_transforms_write_and_prune(lh, transform):
    table = lh.create_table("raw.t", EVENTS_SCHEMA, partition_by=[("ts", transform)])
    table.append(make_events(0, 48, days=2))
    assert table.scan().to_arrow().num_rows == 48
    scan = table.scan(filter=("ts", "<", dt.datetime(2023, 1, 1, tzinfo=dt.UTC)))
    assert scan.files_scanned == 0 and scan.to_arrow().num_rows == 0


def test_namespaces_tables_and_drop(lh):
    lh.create_table("raw.a", EVENTS_SCHEMA)
    lh.create_table("raw.b", EVENTS_SCHEMA)
    assert lh.tables("raw") == ["raw.a", "raw.b"]
    same = lh.create_table("raw.a", EVENTS_SCHEMA, exist_ok=True)
    assert same.name == "raw.a"
    lh.table("raw.a").append(make_events(0, 3))
    location = lh.root / "warehouse" / "raw.db" / "a"
    assert location.exists()
    lh.drop_table("raw.a", purge=True)
    assert not any(p.is_file() for p in location.rglob("*"))
    lh.drop_table("raw.b")
    assert lh.tables("raw") == []
    lh.drop_namespace("raw")
    assert lh.namespaces() == []


def test_empty_table_scans_to_an_empty_result_with_the_schema(events_table):
    scan = events_table.scan()
    assert scan.snapshot_id is None
    result = scan.to_arrow()
    assert result.num_rows == 0
    assert result.schema.names == EVENTS_SCHEMA.names


def test_scan_returns_same_typed_columns_in_the_order_selected(lh: phlo.Lakehouse) -> None:
    """iceberg-rust matches a file's columns to the selection by position when the types line
    up; phlo reads in table order and reorders, so values never trade places."""
    data = pa.table({"a": ["a1", "a2"], "b": ["b1", "b2"], "n": [1, 2]})
    table = lh.create_table("raw.order", data.schema)
    table.append(data)
    for columns in (["b", "a"], ["n", "b", "a"], ["b", "n", "a"], ["a", "b"]):
        got = table.scan(columns).to_arrow()
        assert got.column_names == columns
        assert got.to_pydict() == {c: data.column(c).to_pylist() for c in columns}
