"""Partition values of every transform on every type it takes, as PyIceberg (and so Java)
computes them: bucket on decimals, dates, timestamps with and without zone, binary, uuid,
strings (multibyte), ints and fixed; truncate on decimals, strings and ints; month, hour and day
on values before and after 1970. phlo's writes into a table PyIceberg created must give each
data file the partition PyIceberg computes for its rows, and phlo's filtered reads, merges and
deletes, which skip manifests by those values, must keep every matching row (checked against
a Python model and PyIceberg's own reads)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.expressions import (
    EqualTo,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    LessThan,
    LessThanOrEqual,
)
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import (
    BucketTransform,
    DayTransform,
    HourTransform,
    MonthTransform,
    Transform,
    TruncateTransform,
)
from pyiceberg.types import (
    BinaryType,
    DateType,
    DecimalType,
    FixedType,
    IntegerType,
    LongType,
    StringType,
    TimestampType,
    TimestamptzType,
    UUIDType,
)
from tests.outside_support import Row, optional, sql_catalog

import phlo

SCHEMA = Schema(
    optional(1, "id", LongType()),
    optional(2, "dec", DecimalType(12, 2)),
    optional(3, "d", DateType()),
    optional(4, "ts", TimestampType()),
    optional(5, "tz", TimestamptzType()),
    optional(6, "b", BinaryType()),
    optional(7, "u", UUIDType()),
    optional(8, "s", StringType()),
    optional(9, "i", IntegerType()),
    optional(10, "fx", FixedType(3)),
)

# (source column, transform) of each partition field.
FIELDS: list[tuple[str, Transform[Any, Any]]] = [
    *((c, BucketTransform(7)) for c in ("dec", "d", "ts", "tz", "b", "u", "s", "i", "fx")),
    ("dec", TruncateTransform(100)),
    ("s", TruncateTransform(2)),
    ("i", TruncateTransform(10)),
    ("d", MonthTransform()),
    ("ts", HourTransform()),
    ("tz", DayTransform()),
]

EPOCH = dt.datetime(1970, 1, 1)


def spec(fields: list[tuple[str, Transform[Any, Any]]]) -> PartitionSpec:
    return PartitionSpec(
        *(
            PartitionField(SCHEMA.find_field(c).field_id, 1000 + k, t, f"p{k}")
            for k, (c, t) in enumerate(fields)
        )
    )


def row(i: int) -> Row:
    """Values on both sides of 0 and of 1970, at and off the transforms' boundaries."""
    return {
        "id": i,
        "dec": Decimal(i * 137 - 2000) / 100 - Decimal("0.01") * (i % 3),
        "d": dt.date(1970, 1, 1) + dt.timedelta(days=(i - 10) * 41),
        "ts": EPOCH + dt.timedelta(microseconds=(i - 10) * 3_700_000_001 + i % 2),
        "tz": (EPOCH + dt.timedelta(microseconds=(i - 10) * 86_399_999_999 - 1)).replace(
            tzinfo=dt.UTC
        ),
        "b": bytes([i, 255 - i, 7])[: i % 4],
        "u": uuid.UUID(int=(i * 0x9E3779B97F4A7C15_9E3779B97F4A7C15) % (1 << 128)),
        "s": "é字" * (i % 3) + str(i),
        "i": i * 13 - 100,
        "fx": bytes([i, i + 1, 200]),
    }


def arrow(rows: list[Row]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=SCHEMA.as_arrow())


def create(lh: phlo.Lakehouse, fields: list[tuple[str, Transform[Any, Any]]]) -> None:
    sql_catalog(lh).create_table("raw.t", schema=SCHEMA, partition_spec=spec(fields))


def as_written(column: str, value: Any) -> Any:
    """A value as read back from a data file, in the type PyIceberg's transforms take."""
    if value is None:
        return None
    if column == "u":
        return uuid.UUID(bytes=value) if isinstance(value, bytes) else value
    if column == "tz" and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


def assert_partitions_are_pyicebergs(lh: phlo.Lakehouse) -> int:
    """Every data file's partition is what PyIceberg computes for each of its rows; the number
    of rows checked."""
    table = sql_catalog(lh).load_table("raw.t")
    rows = 0
    for file in (task.file for task in table.scan().plan_files()):
        for r in pq.read_table(file.file_path.removeprefix("file://")).to_pylist():
            rows += 1
            for k, (column, transform) in enumerate(FIELDS):
                source = SCHEMA.find_field(column).field_type
                value = as_written(column, r[column])
                expected = None if value is None else transform.transform(source)(value)
                assert file.partition[k] == expected, (column, transform, value)
    return rows


def test_phlo_writes_the_partition_values_pyiceberg_computes(lh):
    create(lh, FIELDS)
    # (PyIceberg itself cannot write a spec with two fields on one column.)
    t = lh.table("raw.t")
    t.append(arrow([row(i) for i in range(20)]))
    t.merge(arrow([{**row(i), "id": i + 20} for i in range(10)]), "id")
    t.merge(arrow([row(i) for i in range(25, 40)]), "id", write_mode="merge-on-read")
    assert assert_partitions_are_pyicebergs(lh) >= 40
    t.compact()
    assert assert_partitions_are_pyicebergs(lh) == 40
    model = [row(i) for i in range(20)] + [{**row(i), "id": i + 20} for i in range(5)]
    expected = sorted(as_tuple(r) for r in model + [row(i) for i in range(25, 40)])
    assert sorted(map(as_tuple, lh.table("raw.t").scan().to_arrow().to_pylist())) == expected
    pyiceberg = sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()
    assert sorted(map(as_tuple, pyiceberg)) == expected


def as_tuple(r: Row) -> tuple[Any, ...]:
    return tuple(as_written(c, r[c]) for c in r)


# Filters phlo takes, with PyIceberg's expression and the Python model of each.
Check = tuple[tuple[Any, ...], Any, Callable[[Row], bool]]


def comparisons(column: str, value: Any) -> list[Check]:
    def test(op: Callable[[Any], bool]) -> Callable[[Row], bool]:
        return lambda r: r[column] is not None and op(r[column])

    return [
        ((column, "=", value), EqualTo(column, value), test(lambda v: v == value)),
        ((column, "<", value), LessThan(column, value), test(lambda v: v < value)),
        ((column, "<=", value), LessThanOrEqual(column, value), test(lambda v: v <= value)),
        ((column, ">", value), GreaterThan(column, value), test(lambda v: v > value)),
        ((column, ">=", value), GreaterThanOrEqual(column, value), test(lambda v: v >= value)),
        ((column, "in", (value,)), In(column, {value}), test(lambda v: v == value)),
    ]


FILTERED = ("dec", "d", "ts", "tz", "s", "i")


@pytest.mark.parametrize("column", FILTERED)
@pytest.mark.parametrize(
    "transform",
    [pytest.param(t, id=name) for name, t in (("bucket", BucketTransform(7)), ("other", None))],
)
def test_filters_skip_only_manifests_without_a_match(lh, column, transform):
    """One partition field on `column` (the bucket, or its truncate or time transform): four
    manifests, two written by each engine, each of rows of its own range of values."""
    other = next(t for c, t in FIELDS if c == column and not isinstance(t, BucketTransform))
    create(lh, [(column, transform or other)])
    for start in (0, 10):
        lh.table("raw.t").append(arrow([row(i) for i in range(start, start + 10)]))
    for start in (20, 30):
        sql_catalog(lh).load_table("raw.t").append(
            arrow([row(i) for i in range(start, start + 10)])
        )
    model = [row(i) for i in range(40)]
    pyiceberg = sql_catalog(lh).load_table("raw.t")
    for r in (model[3], model[17], model[26], model[39]):
        for phlo_filter, expression, matches in comparisons(column, as_written(column, r[column])):
            expected = sorted(m["id"] for m in model if matches(m))
            got = lh.table("raw.t").scan(filter=phlo_filter).to_arrow()["id"].to_pylist()
            assert sorted(got) == expected, phlo_filter
            theirs = pyiceberg.scan(row_filter=expression).to_arrow()["id"].to_pylist()
            assert sorted(theirs) == expected, phlo_filter


@pytest.mark.parametrize("write_mode", ["copy-on-write", "merge-on-read"])
def test_merges_and_deletes_on_a_truncated_decimal_find_every_row(lh, write_mode):
    """The merge key is the decimal the table is partitioned by `truncate`: a merge that missed
    the manifests holding its keys would insert them a second time."""
    create(lh, [("dec", TruncateTransform(100))])
    for start in (0, 10, 20):
        sql_catalog(lh).load_table("raw.t").append(
            arrow([row(i) for i in range(start, start + 10)])
        )
    model = {row(i)["dec"]: row(i) for i in range(30)}
    t = lh.table("raw.t")

    changed = [{**row(i), "s": f"new {i}"} for i in (4, 15, 27)] + [row(35)]
    result = t.merge(arrow(changed), "dec", write_mode=write_mode)
    assert (result.rows_updated, result.rows_inserted) == (3, 1)
    model.update({r["dec"]: r for r in changed})

    cut = row(18)["dec"]
    deleted = t.delete(("dec", ">", cut), write_mode=write_mode).rows_deleted
    assert deleted == sum(d > cut for d in model)
    model = {d: r for d, r in model.items() if not d > cut}

    expected = sorted(as_tuple(r) for r in model.values())
    assert sorted(map(as_tuple, t.scan().to_arrow().to_pylist())) == expected
    pyiceberg = sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()
    assert sorted(map(as_tuple, pyiceberg)) == expected
