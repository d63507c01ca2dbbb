"""Arrow inputs as other tools produce them — dictionary-encoded, `string_view` and
`large_string` keys, unsigned integers, `date64`, timestamps in seconds and milliseconds and in
another time zone — merged into a table PyIceberg created, in both write modes: each lands as
the value it stands for (as PyIceberg reads it back), keys match the rows they name, and a value
the column cannot hold (an unsigned integer above the long range, nanoseconds a microsecond
column would lose) is a `SchemaError` naming the column that changes nothing."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import (
    DateType,
    IntegerType,
    LongType,
    StringType,
    TimestampType,
    TimestamptzType,
)
from tests.outside_support import Row, optional, sql_catalog

import phlo

SCHEMA = Schema(
    optional(1, "k", StringType()),
    optional(2, "n", LongType()),
    optional(3, "d", DateType()),
    optional(4, "ts", TimestampType()),
    optional(5, "tz", TimestamptzType()),
    optional(6, "i", IntegerType()),
)
UTC = dt.UTC
EMPTY: Row = {"k": None, "n": None, "d": None, "ts": None, "tz": None, "i": None}


def row(k: str, **values: object) -> Row:
    return {**EMPTY, "k": k, **values}


SEED = [row(k, n=i, i=i) for i, k in enumerate("abc")]

# (input, the rows it stands for, merged on "k")
INPUTS = [
    (
        pa.table({"k": pa.array(["b", "z"]).dictionary_encode(), "n": pa.array([20, 26])}),
        [row("b", n=20), row("z", n=26)],
    ),
    (
        pa.table(
            {"k": pa.array(["c", "y"], pa.string_view()), "n": pa.array([30, 25], pa.uint8())}
        ),
        [row("c", n=30), row("y", n=25)],
    ),
    (
        pa.table(
            {"k": pa.array(["a", "x"], pa.large_string()), "i": pa.array([7, 8], pa.uint16())}
        ),
        [row("a", i=7), row("x", i=8)],
    ),
    (
        pa.table(
            {
                "k": ["d64"],
                "d": pa.array([dt.date(1969, 12, 31)], pa.date64()),
                "n": pa.array([2**63 - 1], pa.uint64()),
            }
        ),
        [row("d64", d=dt.date(1969, 12, 31), n=2**63 - 1)],
    ),
    (
        pa.table(
            {
                "k": ["t"],
                "ts": pa.array([dt.datetime(1969, 12, 31, 23, 59, 59, 999000)], pa.timestamp("ms")),
                "tz": pa.array(
                    [dt.datetime(2020, 1, 1, 1, tzinfo=UTC)], pa.timestamp("s", "Europe/Paris")
                ),
            }
        ),
        [
            row(
                "t",
                ts=dt.datetime(1969, 12, 31, 23, 59, 59, 999000),
                tz=dt.datetime(2020, 1, 1, 1, tzinfo=UTC),
            )
        ],
    ),
]

REFUSED = [
    (pa.table({"k": ["q"], "n": pa.array([2**63 + 5], pa.uint64())}), "column n"),
    (pa.table({"k": ["q"], "ts": pa.array([1], pa.timestamp("ns"))}), "column ts"),
    (pa.table({"k": ["q"], "i": pa.array([2**40], pa.int64())}), "column i"),
]


def rows_read(lh: phlo.Lakehouse) -> tuple[list[Row], list[Row]]:
    ours = lh.table("raw.t").scan().to_arrow().to_pylist()
    theirs = sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()
    return sorted(ours, key=lambda r: r["k"]), sorted(theirs, key=lambda r: r["k"])


@pytest.mark.parametrize("write_mode", ["copy-on-write", "merge-on-read"])
def test_arrow_inputs_of_other_tools_merge_as_the_values_they_stand_for(lh, write_mode):
    table = sql_catalog(lh).create_table("raw.t", schema=SCHEMA)
    table.append(pa.Table.from_pylist(SEED, schema=SCHEMA.as_arrow()))
    model = {r["k"]: r for r in SEED}
    t = lh.table("raw.t")
    for data, stands_for in INPUTS:
        result = t.merge(data, "k", write_mode=write_mode)
        updated = sum(r["k"] in model for r in stands_for)
        assert (result.rows_updated, result.rows_inserted) == (updated, len(stands_for) - updated)
        model.update({r["k"]: r for r in stands_for})
        expected = sorted(model.values(), key=lambda r: r["k"])
        assert rows_read(lh) == (expected, expected), data.schema

    before = sql_catalog(lh).load_table("raw.t").metadata_location
    for data, column in REFUSED:
        with pytest.raises(phlo.errors.SchemaError, match=column):
            t.merge(data, "k", write_mode=write_mode)
    assert sql_catalog(lh).load_table("raw.t").metadata_location == before
