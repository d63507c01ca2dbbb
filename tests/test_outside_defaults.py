"""Column default values another engine set (PyIceberg's `add_column(..., default_value=...)`,
Iceberg's `initial-default` and `write-default`, which PyIceberg writes even on format v2):
a data file written before the column was added holds the default for every row. phlo reads
a column a file lacks as nulls and writes rows without it as nulls, so it refuses every read
and write of such a table with a typed error naming the column, and leaves the table as it
was: PyIceberg still reads the defaults."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import IntegerType, LongType, StringType
from tests.outside_support import optional, sql_catalog

import phlo
from phlo import NullCheck, phlo_quality
from phlo.errors import SchemaError

ROWS = [{"id": 1, "x": 5}, {"id": 2, "x": 5}, {"id": 3, "x": 7}]


@phlo_quality(table="raw.t", checks=[NullCheck(columns=["x"])])
def x_never_null() -> None: ...


def batch(ids: list[int]) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64())})


READS: dict[str, Callable[[phlo.Table], object]] = {
    "scan": lambda t: t.scan().to_arrow(),
    "filter on the column": lambda t: t.scan(filter=("x", "=", 5)).to_arrow(),
    "other columns only": lambda t: t.scan().select(["id"]).to_arrow(),
}
WRITES: dict[str, Callable[[phlo.Table], object]] = {
    "append": lambda t: t.append(batch([9])),
    "merge": lambda t: t.merge(batch([1, 9]), "id"),
    "delete": lambda t: t.delete(("id", "=", 2)),
    "compaction": lambda t: t.compact(),
}


@pytest.fixture
def defaulted(lh: phlo.Lakehouse) -> phlo.Lakehouse:
    """raw.t: two files of PyIceberg's written before `x` was added with default 5, one after."""
    table = sql_catalog(lh).create_table(
        "raw.t", schema=Schema(optional(1, "id", LongType()), optional(2, "v", StringType()))
    )
    table.append(pa.table({"id": pa.array([1], pa.int64()), "v": ["a"]}))
    table.append(pa.table({"id": pa.array([2], pa.int64()), "v": ["b"]}))
    with table.update_schema() as update:
        update.add_column("x", IntegerType(), default_value=5)
    table.append(
        pa.Table.from_pylist([{"id": 3, "v": "c", "x": 7}], schema=table.schema().as_arrow())
    )
    assert pyiceberg_rows(lh) == ROWS
    return lh


def pyiceberg_rows(lh: phlo.Lakehouse) -> list[dict[str, int]]:
    rows = sql_catalog(lh).load_table("raw.t").scan(selected_fields=("id", "x")).to_arrow()
    return sorted(rows.to_pylist(), key=lambda r: r["id"])


def test_every_read_and_write_of_a_table_with_column_defaults_is_refused(defaulted):
    lh = defaulted
    table = lh.table("raw.t")
    location = table.metadata_location
    for name, read in READS.items():
        with pytest.raises(SchemaError, match="column x has an Iceberg initial-default") as e:
            read(table)
        assert "raw.t" in str(e.value), name
    with pytest.raises(SchemaError, match="initial-default"):
        x_never_null.run(None, lakehouse=lh)
    for name, write in WRITES.items():
        with pytest.raises(SchemaError, match="column x has an Iceberg initial-default"):
            write(table)
        assert lh.table("raw.t").metadata_location == location, name
    assert pyiceberg_rows(lh) == ROWS
