"""Partition transforms written by PyIceberg (bucket, truncate on strings and integers, year,
month, day, hour, several fields at once, a field removed later) under phlo's writes: merge,
delete by value and compaction keep every row, and phlo's filtered scans return exactly the
matching rows while pruning only files that cannot match. Checked against a Python model and
PyIceberg's own reads, on format versions 1 (where a removed field becomes a void transform)
and 2."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import (
    BucketTransform,
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    TruncateTransform,
    YearTransform,
)
from pyiceberg.types import DateType, LongType, StringType, TimestamptzType
from tests.outside_support import Row, optional, sql_catalog

import phlo

T0 = dt.datetime(2023, 12, 31, 22, 0, tzinfo=dt.UTC)


SCHEMA = Schema(
    optional(1, "id", LongType()),
    optional(2, "s", StringType()),
    optional(3, "ts", TimestamptzType()),
    optional(4, "d", DateType()),
    optional(5, "n", LongType()),
)


def spec(*fields: tuple[int, Any, str]) -> PartitionSpec:
    return PartitionSpec(
        *(PartitionField(source, 1000 + i, t, name) for i, (source, t, name) in enumerate(fields))
    )


SPECS = {
    "bucket": spec((1, BucketTransform(4), "id_bucket")),
    "truncate": spec((2, TruncateTransform(2), "s_trunc"), (5, TruncateTransform(10), "n_trunc")),
    "time": spec(
        (3, HourTransform(), "ts_hour"),
        (4, MonthTransform(), "d_month"),
    ),
    "year-day": spec((3, DayTransform(), "ts_day"), (4, YearTransform(), "d_year")),
    "multi": spec(
        (4, IdentityTransform(), "d"),
        (1, BucketTransform(3), "id_bucket"),
        (2, TruncateTransform(1), "s_trunc"),
    ),
}


def row(i: int) -> Row:
    return {
        "id": i,
        "s": None if i % 11 == 0 else f"{'abcde'[i % 5]}{i}",
        "ts": T0 + dt.timedelta(minutes=37 * i),
        "d": dt.date(2023, 11, 25) + dt.timedelta(days=3 * i),
        "n": i * 7 - 40,
    }


FILTERS = [
    (("id", "=", 5), lambda r: r["id"] == 5),
    (("id", "in", (1, 2, 30)), lambda r: r["id"] in (1, 2, 30)),
    (("s", "=", "c2"), lambda r: r["s"] == "c2"),
    (("s", ">=", "d"), lambda r: r["s"] is not None and r["s"] >= "d"),
    (("s", "is null"), lambda r: r["s"] is None),
    (("n", "<", -20), lambda r: r["n"] < -20),
    (("n", "between", (-3, 10)), lambda r: -3 <= r["n"] <= 10),
    (("ts", ">=", T0 + dt.timedelta(hours=3)), lambda r: r["ts"] >= T0 + dt.timedelta(hours=3)),
    (("ts", "<", dt.datetime(2024, 1, 1, tzinfo=dt.UTC)), lambda r: r["ts"].year < 2024),
    (("d", "=", dt.date(2023, 12, 4)), lambda r: r["d"] == dt.date(2023, 12, 4)),
    (("d", ">", dt.date(2024, 1, 1)), lambda r: r["d"] > dt.date(2024, 1, 1)),
]


def ids(rows: list[Row]) -> list[int]:
    return sorted(r["id"] for r in rows)


def assert_agrees(lh: phlo.Lakehouse, model: dict[int, Row]) -> None:
    table = lh.table("raw.t")
    expected = sorted(model.values(), key=lambda r: r["id"])
    assert sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"]) == expected
    pyiceberg = sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()
    assert sorted(pyiceberg, key=lambda r: r["id"]) == expected
    for filter, match in FILTERS:
        scan = table.scan(filter=filter)
        assert ids(scan.to_arrow().to_pylist()) == ids([r for r in expected if match(r)]), filter


# PyIceberg keeps the name of a field it voids in a v1 spec; when that name is a column's (an
# identity field), iceberg-rust refuses the manifests' spec ("conflicts with schema field"):
# phlo cannot read the table, and says so with a typed error that does not call it damaged.
VOID_NAMED_LIKE_A_COLUMN = ("multi", "1")


def spec_losing_its_first_field(lh, name: str, format_version: str) -> str:
    """raw.t created by PyIceberg with spec `name`, rows 0 to 19 appended, the spec's first field
    removed (void in v1), rows 20 to 29 appended under the new spec; the removed field's name."""
    table = sql_catalog(lh).create_table(
        "raw.t",
        schema=SCHEMA,
        partition_spec=SPECS[name],
        properties={"format-version": format_version},
    )
    arrow_schema = table.schema().as_arrow()
    table.append(pa.Table.from_pylist([row(i) for i in range(0, 20)], schema=arrow_schema))
    removed = SPECS[name].fields[0].name
    with table.update_spec() as update:
        update.remove_field(removed)
    table.append(pa.Table.from_pylist([row(i) for i in range(20, 30)], schema=arrow_schema))
    return removed


@pytest.mark.parametrize(
    ("name", "format_version"),
    [
        pytest.param(n, v, id=f"{n}-{v}")
        for n in SPECS
        for v in ("1", "2")
        if (n, v) != VOID_NAMED_LIKE_A_COLUMN
    ],
)
def test_pyiceberg_partition_transforms_keep_every_row_under_phlo_writes(lh, name, format_version):
    spec_losing_its_first_field(lh, name, format_version)
    model = {i: row(i) for i in range(30)}
    assert_agrees(lh, model)

    t = lh.table("raw.t")
    if format_version == "1":
        t.set_properties({"format-version": "2"})  # phlo writes v2 only; the void field stays
    batch = [{**row(i), "s": f"m{i}", "n": -i} for i in (3, 17, 25, 40)]
    result = t.merge(pa.Table.from_pylist(batch, schema=t.schema), "id")
    assert (result.rows_updated, result.rows_inserted) == (3, 1)
    model.update({r["id"]: r for r in batch})
    assert_agrees(lh, model)

    assert t.delete(("n", "<", -20)).rows_deleted == sum(r["n"] < -20 for r in model.values())
    model = {k: r for k, r in model.items() if not r["n"] < -20}
    assert_agrees(lh, model)

    t.compact()
    assert_agrees(lh, model)


def test_a_void_partition_field_named_like_a_column_is_a_typed_refusal_naming_it(lh):
    voided = spec_losing_its_first_field(lh, *VOID_NAMED_LIKE_A_COLUMN)
    before = sql_catalog(lh).load_table("raw.t").metadata_location

    with pytest.raises(phlo.errors.StorageError) as refused:
        lh.table("raw.t").scan().to_arrow()
    message = str(refused.value)
    assert f"'{voided}'" in message and "void partition field" in message, message
    assert "damaged" not in message and "phlo changed nothing" in message, message
    # PyIceberg still reads every row, and nothing was written.
    assert len(sql_catalog(lh).load_table("raw.t").scan().to_arrow()) == 30
    assert sql_catalog(lh).load_table("raw.t").metadata_location == before
