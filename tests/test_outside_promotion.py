"""Types another engine promoted (PyIceberg's `update_column`: int → long, decimal(9,2) →
decimal(18,2)) on columns the table is partitioned by and merged on, with an equality delete
written before the promotion: old files keep the narrow types, their statistics and partition
values narrow bounds. phlo's filters (statistics and partition pruning), merges on the
promoted key, deletes by value and compaction read old and new files as the wider type and
agree with a plain-Python model, and PyIceberg reads what phlo wrote. Delete files written
after the promotion (their partition values wide) apply to the old files of their partition,
and a merge on the promoted partition column finds the keys of old files."""

from __future__ import annotations

import decimal

import pyarrow as pa
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import BucketTransform, IdentityTransform
from pyiceberg.types import DecimalType, IntegerType, LongType, StringType
from tests.outside_files_support import (
    commit_deletes,
    data_files,
    equality_deletes,
    position_deletes,
)
from tests.outside_support import Row, optional, sql_catalog

import phlo

D = decimal.Decimal
BIG = 2**40
FILTERS = {
    ("p", "=", 1): lambda r: r["p"] == 1,
    ("p", ">", 2**32): lambda r: r["p"] > 2**32,
    ("k", "=", 3): lambda r: r["k"] == 3,
    ("k", "in", (2, BIG + 1)): lambda r: r["k"] in (2, BIG + 1),
    ("d", "=", "1.25"): lambda r: r["d"] == D("1.25"),
    ("d", ">", "100000000000"): lambda r: r["d"] > 10**11,
}


def promoted(lh: phlo.Lakehouse) -> dict[int, Row]:
    spec = PartitionSpec(
        PartitionField(2, 1000, IdentityTransform(), "p"),
        PartitionField(1, 1001, BucketTransform(4), "kb"),
        PartitionField(3, 1002, IdentityTransform(), "dp"),
    )
    schema = Schema(
        optional(1, "k", IntegerType()),
        optional(2, "p", IntegerType()),
        optional(3, "d", DecimalType(9, 2)),
        optional(4, "v", StringType()),
    )
    table = sql_catalog(lh).create_table("raw.t", schema=schema, partition_spec=spec)
    old = [{"k": i, "p": i % 2, "d": D(f"{i % 3}.25"), "v": "old"} for i in range(1, 9)]
    table.append(pa.Table.from_pylist(old, schema=table.schema().as_arrow()))
    # Deletes k = 5 (in its partition: p=1, kb=bucket(5), dp=2.25), written with k an int.
    bucket = BucketTransform(4).transform(IntegerType())(5)
    deletes = equality_deletes(table, {"k": [5]}, partition=[1, bucket, D("2.25")])
    commit_deletes(table, [deletes])
    table = sql_catalog(lh).load_table("raw.t")
    with table.update_schema() as update:
        update.update_column("k", LongType())
        update.update_column("p", LongType())
        update.update_column("d", DecimalType(18, 2))
    new = [
        {"k": BIG + i, "p": (i % 2) * (1 + 2**33), "d": D(f"{10**12 + i}.50"), "v": "new"}
        for i in range(4)
    ]
    table.append(pa.Table.from_pylist(new, schema=table.schema().as_arrow()))
    return {r["k"]: r for r in old + new if r["k"] != 5}


def assert_agrees(lh: phlo.Lakehouse, model: dict[int, Row], when: str) -> None:
    table = lh.table("raw.t")
    rows = {r["k"]: r for r in table.scan().to_arrow().to_pylist()}
    assert rows == model, when
    for filter, match in FILTERS.items():
        got = sorted(table.scan(filter=filter).to_arrow().column("k").to_pylist())
        assert got == sorted(k for k, r in model.items() if match(r)), (when, filter)


def test_phlo_reads_and_writes_columns_another_engine_promoted(lh):
    model = promoted(lh)
    assert_agrees(lh, model, "as PyIceberg left it")
    table = lh.table("raw.t")
    batch = pa.table(
        {
            "k": pa.array([3, BIG + 1, 5], pa.int64()),
            "p": pa.array([1, 1 + 2**33, 1], pa.int64()),
            "d": pa.array([D("1.25"), D("99999999999.99"), D("2.25")], pa.decimal128(18, 2)),
            "v": ["m", "m", "m"],
        }
    )
    for mode, counts in [("merge-on-read", (2, 1)), ("copy-on-write", (3, 0))]:
        result = table.merge(batch, "k", write_mode=mode)
        assert (result.rows_updated, result.rows_inserted) == counts, mode
        model.update({r["k"]: r for r in batch.to_pylist()})
        assert_agrees(lh, model, mode)
    for filter in [("p", "=", 0), ("d", "=", "2.25"), ("k", "=", 7)]:
        table.delete(filter)
        model = {k: r for k, r in model.items() if not FILTERS.get(filter, _eq(filter))(r)}
        assert_agrees(lh, model, f"delete {filter}")
    table.compact()
    assert_agrees(lh, model, "compaction")
    pyiceberg = sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()
    assert {r["k"]: r for r in pyiceberg} == model


def _eq(filter: tuple[str, str, object]):
    column, _, value = filter
    wanted = D(value) if column == "d" else value
    return lambda r: r[column] == wanted


def test_deletes_and_merges_after_a_promotion_reach_the_old_files_of_their_partition(lh):
    spec = PartitionSpec(PartitionField(1, 1000, IdentityTransform(), "k"))
    schema = Schema(optional(1, "k", IntegerType()), optional(2, "v", StringType()))
    table = sql_catalog(lh).create_table("raw.t", schema=schema, partition_spec=spec)
    old = [{"k": k, "v": "old"} for k in range(1, 6)]
    table.append(pa.Table.from_pylist(old, schema=table.schema().as_arrow()))
    with table.update_schema() as update:
        update.update_column("k", LongType())
    table = sql_catalog(lh).load_table("raw.t")
    [of_2] = [path for path, _ in data_files(table) if "k=2" in path]
    # Written with k a long: their partition values are longs, the old files' ints.
    deletes = [
        position_deletes(table, [(of_2, 0)], partition=[2]),
        equality_deletes(table, {"v": ["old"]}, partition=[3]),
    ]
    commit_deletes(table, deletes)
    model = {k: "old" for k in (1, 4, 5)}
    t = lh.table("raw.t")
    assert {r["k"]: r["v"] for r in t.scan().to_arrow().to_pylist()} == model
    result = t.merge(pa.table({"k": pa.array([1, 9], pa.int64()), "v": ["new", "new"]}), "k")
    assert (result.rows_updated, result.rows_inserted) == (1, 1)
    model |= {1: "new", 9: "new"}
    assert {r["k"]: r["v"] for r in t.scan().to_arrow().to_pylist()} == model
    t.compact()
    assert {r["k"]: r["v"] for r in t.scan().to_arrow().to_pylist()} == model
    pyiceberg = sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()
    assert {r["k"]: r["v"] for r in pyiceberg} == model
