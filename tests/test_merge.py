"""Merging from Python: upserts, dedupe methods, strategies, interop, bad input, concurrency."""

from __future__ import annotations

import datetime as dt
import decimal
import multiprocessing as mp

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

import phlo
import process_support
from phlo import errors

SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("amount", pa.decimal128(12, 2)),
        pa.field("note", pa.string()),
    ]
)
T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def rows(ids, note="v1", day=0):
    return pa.table(
        {
            "id": [str(i) for i in ids],
            "ts": [T0 + dt.timedelta(days=day, minutes=i) for i in range(len(ids))],
            "amount": [decimal.Decimal(f"{i}.25") for i in range(len(ids))],
            "note": [note if i % 4 else None for i in range(len(ids))],
        },
        schema=SCHEMA,
    )


def by_id(table: phlo.Table) -> dict[str, dict]:
    return {r["id"]: r for r in table.scan().to_arrow().to_pylist()}


@pytest.fixture
def orders(lh):
    return lh.create_table("raw.orders", SCHEMA, partition_by=["day(ts)"])


@pytest.mark.parametrize(
    "convert",
    [lambda t: t, pl.from_arrow, lambda t: t.to_pandas()],
    ids=["pyarrow", "polars", "pandas"],
)
def test_upsert_replaces_matching_keys_and_inserts_the_rest(orders, convert):
    first = orders.merge(convert(rows(range(100))), unique_key="id")
    assert (first.rows_inserted, first.rows_updated) == (100, 0)
    second = orders.merge(convert(rows(range(90, 120), note="v2", day=1)), unique_key="id")
    assert (second.rows_inserted, second.rows_updated, second.rows_deleted) == (20, 10, 0)
    assert second.files_removed >= 1 and second.files_scanned >= second.files_removed
    assert set(second.timings) == {"read_input", "dedupe", "plan", "rewrite", "write", "commit"}
    table = by_id(orders)
    assert len(table) == 120
    assert table["95"]["ts"] == T0 + dt.timedelta(days=1, minutes=5)  # moved partition
    assert table["5"]["ts"] == T0 + dt.timedelta(minutes=5)
    assert table["91"]["note"] == "v2" and table["91"]["amount"] == decimal.Decimal("1.25")
    assert [s.operation for s in orders.history()] == ["append", "overwrite"]
    assert orders.history()[-1].summary["phlo.rows-updated"] == "10"


def test_dedupe_methods_and_order_by(lh):
    table = lh.create_table("raw.d", {"id": pa.int64(), "version": pa.int64(), "v": pa.string()})
    batch = pa.table(
        {"id": [1, 1, 2, 1], "version": [3, 9, 1, 5], "v": ["a", "b", "c", "d"]},
        schema=table.schema.remove_metadata(),
    )

    def result(**config):
        table.merge(batch, "id", merge_config=config)
        return {r["id"]: r["v"] for r in table.scan().to_arrow().to_pylist()}

    assert result(deduplication_method="first") == {1: "a", 2: "c"}
    assert result(deduplication_method="last") == {1: "d", 2: "c"}
    assert result(deduplication_method="last", order_by="version") == {1: "b", 2: "c"}
    hashed = table.merge(
        pa.concat_tables([batch.slice(2, 1)] * 3),
        "id",
        merge_config={"deduplication_method": "hash"},
    )
    assert hashed.duplicates_dropped == 2
    with pytest.raises(errors.MergeError, match="distinct keys"):
        table.merge(batch, "id", merge_config={"deduplication_method": "hash"})


def test_composite_keys_and_append_strategy(lh):
    table = lh.create_table("raw.c", {"a": pa.string(), "b": pa.int32(), "v": pa.float64()})
    table.merge([{"a": "x", "b": 1, "v": 1.0}, {"a": "x", "b": 2, "v": 2.0}], ["a", "b"])
    r = table.merge([{"a": "x", "b": 2, "v": 20.0}, {"a": "y", "b": 2, "v": 3.0}], ["a", "b"])
    assert (r.rows_updated, r.rows_inserted) == (1, 1)
    assert sorted(table.scan().to_arrow().column("v").to_pylist()) == [1.0, 3.0, 20.0]
    appended = table.merge([{"a": "x", "b": 1, "v": 9.0}] * 2, ["a", "b"], merge_strategy="append")
    assert (appended.rows_inserted, appended.duplicates_dropped) == (2, 0)
    deduped = phlo.merge_to_iceberg(
        table, [{"a": "z", "b": 1, "v": 1.0}] * 3, ["a", "b"], strategy="append"
    )
    assert (deduped.rows_inserted, deduped.duplicates_dropped) == (1, 2)
    assert table.scan().to_arrow().num_rows == 6


def test_pyiceberg_reads_every_snapshot_a_merge_writes(lh, orders):
    expected = []
    orders.merge(rows(range(50)), "id")
    expected.append(50)
    orders.merge(rows(range(25, 75), note="v2", day=2), "id")
    expected.append(75)
    orders.merge(rows(range(0, 10), note="v3", day=1), "id")
    expected.append(75)
    catalog = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
    pyi = catalog.load_table("raw.orders")
    snapshots = sorted(pyi.snapshots(), key=lambda s: s.sequence_number)
    assert [pyi.scan(snapshot_id=s.snapshot_id).to_arrow().num_rows for s in snapshots] == expected
    assert [int(s.summary["total-records"]) for s in snapshots] == expected
    latest = {r["id"]: r["note"] for r in pyi.scan().to_arrow().to_pylist()}
    assert latest["1"] == "v3" and latest["30"] == "v2" and latest["74"] == "v2"
    assert len(latest) == 75


def test_bad_merge_input_changes_nothing(orders):
    orders.merge(rows(range(10)), "id")
    before = by_id(orders)

    with pytest.raises(errors.SchemaError) as info:
        orders.merge(rows(range(3)), "customer_id")
    assert info.value.column == "customer_id"

    drift = rows(range(3)).set_column(2, "amount", pa.array(["1.5", "x", "2"]))
    with pytest.raises(errors.SchemaError) as info:
        orders.merge(drift, "id")
    assert info.value.column == "amount"

    with pytest.raises(errors.InputError, match="merge_strategy"):
        orders.merge(rows(range(3)), "id", merge_strategy="upsert")
    with pytest.raises(errors.InputError, match="deduplication_method"):
        orders.merge(rows(range(3)), "id", merge_config={"deduplication_method": "newest"})
    with pytest.raises(errors.InputError, match="merge_config"):
        orders.merge(rows(range(3)), "id", merge_config={"dedupe": "last"})
    with pytest.raises(errors.EmptyInputError):
        orders.merge(rows([]), "id")
    assert by_id(orders) == before
    assert len(orders.history()) == 1


def test_null_keys_name_the_rows(lh):
    table = lh.create_table("raw.n", {"id": pa.string(), "v": pa.int64()})
    with pytest.raises(errors.MergeError) as info:
        table.merge([{"id": "a", "v": 1}, {"id": None, "v": 2}, {"id": None, "v": 3}], "id")
    assert info.value.column == "id"
    assert "rows 1, 2" in str(info.value)
    assert table.history() == []


@pytest.mark.parametrize(
    "config", [{}, {"deduplication_method": None}], ids=["dedupe", "no-dedupe"]
)
@pytest.mark.parametrize(
    ("key", "column", "nulls"),
    [("k", "k", 2), (["part", "k"], "part", 1)],
    ids=["single", "composite"],
)
def test_null_keys_are_refused_with_or_without_dedupe(lh, config, key, column, nulls):
    table = lh.create_table("raw.n", {"k": pa.string(), "part": pa.int64()})
    table.merge(pa.table({"k": ["", "a"], "part": [0, 1]}), "k")
    before = {(r["k"], r["part"]) for r in table.scan().to_arrow().to_pylist()}
    # Without the check, a null `k` would read as "" and replace the "" row.
    batch = pa.table({"k": [None, "b", None], "part": [1, None, 2]})
    with pytest.raises(errors.MergeError) as info:
        table.merge(batch, key, merge_config=config)
    assert (info.value.table, info.value.column) == ("raw.n", column)
    assert f"{nulls} null value(s)" in str(info.value)
    by_key = {(r["k"], r["part"]) for r in table.scan().to_arrow().to_pylist()}
    assert by_key == before and len(table.history()) == 1
    with pytest.raises(errors.MergeError):
        phlo.merge_to_iceberg(table, batch, key, deduplication_method=None)


def _merge_worker(root: str, writer: int, out: mp.Queue) -> None:
    lh = phlo.Lakehouse.open(root)
    batch = pa.table({"id": [f"k{i:03}" for i in range(200)], "writer": [writer] * 200})
    try:
        lh.table("raw.race").merge(batch, "id")
        out.put((writer, "ok"))
    except errors.CommitConflictError as exc:
        out.put((writer, f"conflict: {exc}"))


def test_two_processes_merging_the_same_keys_lose_no_update(lh):
    table = lh.create_table("raw.race", {"id": pa.string(), "writer": pa.int64()})
    table.merge(pa.table({"id": [f"k{i:03}" for i in range(200)], "writer": [0] * 200}), "id")
    ctx = process_support.context()
    out = ctx.Queue()
    procs = [ctx.Process(target=_merge_worker, args=(str(lh.root), w, out)) for w in (1, 2)]
    for p in procs:
        p.start()
    outcomes = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert "ok" in outcomes.values(), outcomes
    assert all(v == "ok" or v.startswith("conflict") for v in outcomes.values())
    data = table.scan().to_arrow()
    assert data.num_rows == 200, "every key exactly once"
    assert len(set(data.column("writer").to_pylist())) == 1
    assert len(data.column("id").unique()) == 200


def test_pandas_without_arrow_types_merges(lh):
    table = lh.create_table(
        "raw.p", {"id": pa.int64(), "when": pa.timestamp("us"), "x": pa.float64()}
    )
    frame = pd.DataFrame(
        {"id": [1, 2], "when": pd.to_datetime(["2024-01-01", "2024-01-02"]), "x": [0.5, None]}
    )
    assert table.merge(frame, "id").rows_inserted == 2
    assert table.scan().to_arrow().column("x").null_count == 1


def test_partition_pruning_when_partition_columns_are_in_the_key(lh):
    table = lh.create_table(
        "raw.regional",
        {"region": pa.string(), "id": pa.int64(), "v": pa.int64()},
        partition_by=["region"],
    )
    for region in ("eu", "us", "apac"):
        table.merge(
            pa.table({"region": [region] * 100, "id": list(range(100)), "v": [0] * 100}),
            ["region", "id"],
        )
    # Every region's file covers ids 0-99; only the eu file can hold ("eu", 5).
    update = table.merge(pa.table({"region": ["eu"], "id": [5], "v": [1]}), ["region", "id"])
    assert (update.files_scanned, update.files_removed, update.rows_updated) == (1, 1, 1)
    # Keyed on id alone, a row could move between partitions: every file with id 5 is read.
    by_id = table.merge(pa.table({"region": ["us"], "id": [7], "v": [2]}), "id")
    assert by_id.files_scanned == 3
    assert (by_id.rows_updated, by_id.rows_deleted) == (1, 2)  # id 7 was in all three regions
    data = table.scan().to_arrow().to_pylist()
    assert len(data) == 298
    assert {(r["region"], r["v"]) for r in data if r["id"] == 7} == {("us", 2)}
    assert {(r["region"], r["v"]) for r in data if r["id"] == 5} == {
        ("eu", 1),
        ("us", 0),
        ("apac", 0),
    }


def test_merge_config_takes_the_seeds_keys(lh):
    table = lh.create_table("raw.seed", {"id": pa.string(), "v": pa.int64(), "ts": pa.int64()})
    batch = [
        {"id": "a", "v": 1, "ts": 3},
        {"id": "a", "v": 2, "ts": 1},
        {"id": "b", "v": 3, "ts": 1},
    ]
    by_order = table.merge(batch, "id", merge_config={"deduplication_order_by": "ts"})
    assert by_order.duplicates_dropped == 1
    current = table.scan().to_arrow().to_pydict()
    assert dict(zip(current["id"], current["v"], strict=True)) == {"a": 1, "b": 3}
    # deduplication=True on an append keeps the last row of each key.
    appended = table.merge(
        [{"id": "c", "v": 1, "ts": 0}, {"id": "c", "v": 2, "ts": 0}],
        "id",
        merge_strategy="append",
        merge_config={"deduplication": True},
    )
    assert (appended.rows_inserted, appended.duplicates_dropped) == (1, 1)
    # deduplication=False on a merge keeps every row: repeated keys are the caller's error.
    with pytest.raises(errors.MergeError):
        table.merge(batch, "id", merge_config={"deduplication": False})
    result = phlo.merge_to_iceberg(
        table,
        [{"id": "d", "v": 1, "ts": 0}] * 2,
        "id",
        merge_config={"deduplication_method": "first"},
    )
    assert result.duplicates_dropped == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"deduplication": "yes"}, "deduplication"),
        ({"deduplication": False, "deduplication_method": "last"}, "turns deduplication off"),
        ({"order_by": "ts", "deduplication_order_by": "ts"}, "both"),
        ({"deduplication_order_by": 3}, "deduplication_order_by"),
    ],
)
def test_bad_merge_configs_are_named(lh, config, message):
    table = lh.create_table("raw.bad", {"id": pa.string(), "ts": pa.int64()})
    with pytest.raises(errors.InputError, match=message):
        table.merge([{"id": "a", "ts": 1}], "id", merge_config=config)
    assert table.current_snapshot_id is None
