"""Nested columns (a struct, a list of structs, a map of structs) evolved by PyIceberg: fields
added inside them, dropped, dropped and added again under the old name, renamed so that two
fields swap names. Iceberg matches nested fields by field id as it does top-level columns, so
phlo's scans, a merge that keeps the untouched rows, and compaction must read each old file's
nested values under the field they belong to (null where the file lacks the field): never an
error, never a value under another field's name, never a dropped field's value resurrected.
Every step is compared with a plain-Python model and read back by PyIceberg too."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pytest
from pyiceberg.schema import Schema
from pyiceberg.table import Table as IcebergTable
from pyiceberg.types import (
    ListType,
    LongType,
    MapType,
    StringType,
    StructType,
)
from tests.outside_support import Row, optional, sql_catalog

import phlo

SCHEMA = Schema(
    optional(1, "id", LongType()),
    optional(2, "s", StructType(optional(3, "a", StringType()), optional(4, "b", StringType()))),
    optional(5, "l", ListType(6, StructType(optional(7, "x", LongType())), element_required=False)),
    optional(
        8,
        "m",
        MapType(
            9, StringType(), 10, StructType(optional(11, "p", LongType())), value_required=False
        ),
    ),
)


def row(i: int) -> Row:
    return {"id": i, "s": {"a": f"a{i}", "b": f"b{i}"}, "l": [{"x": i}], "m": {"k": {"p": i}}}


def add_fields(table: IcebergTable) -> Callable[[Row], Row]:
    with table.update_schema() as update:
        update.add_column(("s", "c"), StringType())
        update.add_column(("l", "element", "z"), StringType())
        update.add_column(("m", "value", "q"), StringType())
    return lambda r: {
        "id": r["id"],
        "s": {**r["s"], "c": None},
        "l": [{**e, "z": None} for e in r["l"]],
        "m": {k: {**v, "q": None} for k, v in r["m"].items()},
    }


def drop_a_field(table: IcebergTable) -> Callable[[Row], Row]:
    with table.update_schema() as update:
        update.delete_column("s.a")
    return lambda r: {**r, "s": {"b": r["s"]["b"]}}


def drop_and_add_again(table: IcebergTable) -> Callable[[Row], Row]:
    with table.update_schema() as update:
        update.delete_column("s.a")
    with table.update_schema() as update:
        update.add_column(("s", "a"), StringType())
    return lambda r: {**r, "s": {"b": r["s"]["b"], "a": None}}


def swap_names(table: IcebergTable) -> Callable[[Row], Row]:
    for old, new in [("s.a", "t"), ("s.b", "a"), ("s.t", "b")]:
        with table.update_schema() as update:
            update.rename_column(old, new)
    # The field first named a is now b (and stays first): its values follow it.
    return lambda r: {**r, "s": {"b": r["s"]["a"], "a": r["s"]["b"]}}


EVOLUTIONS = [
    pytest.param(add_fields, id="add"),
    pytest.param(drop_a_field, id="drop"),
    pytest.param(drop_and_add_again, id="drop-add"),
    pytest.param(swap_names, id="swap-names"),
]


def canonical(rows: list[Row]) -> list[Row]:
    """Rows sorted by id, maps as sorted lists of pairs (how Arrow returns them)."""
    out = []
    for r in rows:
        m = r["m"]
        pairs = sorted(m.items()) if isinstance(m, dict) else sorted(m)
        out.append({**r, "m": pairs})
    return sorted(out, key=lambda r: r["id"])


def assert_reads(lh: phlo.Lakehouse, model: dict[int, Row]) -> None:
    expected = canonical(list(model.values()))
    phlo_rows = lh.table("raw.t").scan().to_arrow().to_pylist()
    assert canonical(phlo_rows) == expected, "phlo"
    pyiceberg_rows = sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()
    assert canonical(pyiceberg_rows) == expected, "pyiceberg"


@pytest.mark.parametrize("evolve", EVOLUTIONS)
def test_nested_fields_evolved_by_pyiceberg_read_merge_and_compact_by_field_id(lh, evolve):
    table = sql_catalog(lh).create_table("raw.t", schema=SCHEMA)
    table.append(pa.Table.from_pylist([row(i) for i in range(4)], schema=table.schema().as_arrow()))
    table.append(
        pa.Table.from_pylist([row(i) for i in range(4, 6)], schema=table.schema().as_arrow())
    )
    to_current = evolve(table)
    model = {i: to_current(row(i)) for i in range(6)}
    assert_reads(lh, model)

    # A merge rewrites the first file: the rows it keeps carry their nested values over.
    changed = {**model[1], "id": 1}
    changed["s"] = {name: f"new-{name}" for name in changed["s"]}
    batch = pa.Table.from_pylist([changed], schema=lh.table("raw.t").schema)
    assert lh.table("raw.t").merge(batch, "id").rows_updated == 1
    model[1] = changed
    assert_reads(lh, model)

    lh.table("raw.t").compact()
    assert_reads(lh, model)
    lh.table("raw.t").delete(("id", "=", 4))
    del model[4]
    assert_reads(lh, model)
