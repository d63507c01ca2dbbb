"""Parquet files another writer made without Iceberg field ids, added to a table by PyIceberg's
`add_files` and read through the table's name mapping (`schema.name-mapping.default`): with
their columns in another order, with a narrower integer type, lacking a column, and
read again after PyIceberg renamed a column (the mapping keeps the old name as an alias).
phlo's scans, merges (copy-on-write and merge-on-read), deletes and compaction must keep every
row's values under the right column, as PyIceberg reads them. (PyIceberg refuses to add files
with a column the table lacks.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import ListType, LongType, StringType, StructType
from tests.outside_support import Row, optional, sql_catalog

import phlo

SCHEMA = Schema(
    optional(1, "id", LongType()),
    optional(2, "a", StringType()),
    optional(3, "b", StringType()),
    optional(4, "n", LongType()),
)


def write(path: Path, columns: dict[str, tuple[pa.DataType, list[Any]]]) -> str:
    """A Parquet file of plain pyarrow (no field ids) with these columns in this order."""
    table = pa.table({name: pa.array(values, type) for name, (type, values) in columns.items()})
    assert all(f.metadata is None for f in table.schema)
    pq.write_table(table, path)
    return str(path)


def build(lh: phlo.Lakehouse, tmp_path: Path) -> dict[int, Row]:
    table = sql_catalog(lh).create_table("raw.t", schema=SCHEMA)
    reordered = write(
        tmp_path / "reordered.parquet",
        {
            "n": (pa.int64(), [10, 11, 12]),
            "b": (pa.string(), ["b0", "b1", "b2"]),
            "id": (pa.int64(), [0, 1, 2]),
            "a": (pa.string(), ["a0", "a1", "a2"]),
        },
    )
    narrow = write(
        tmp_path / "narrow.parquet",
        {
            "id": (pa.int64(), [3, 4]),
            "a": (pa.string(), ["a3", "a4"]),
            "b": (pa.string(), ["b3", "b4"]),
            "n": (pa.int32(), [13, 14]),
        },
    )
    lacking = write(
        tmp_path / "lacking.parquet",
        {"b": (pa.string(), ["b5", "b6"]), "id": (pa.int64(), [5, 6])},
    )
    table.add_files([reordered, narrow, lacking])
    model = {i: {"id": i, "a": f"a{i}", "b": f"b{i}", "n": 10 + i} for i in range(5)}
    model.update({i: {"id": i, "a": None, "b": f"b{i}", "n": None} for i in (5, 6)})
    return model


def assert_reads(lh: phlo.Lakehouse, model: dict[int, Row]) -> None:
    expected = sorted(model.values(), key=lambda r: r["id"])
    got = lh.table("raw.t").scan().to_arrow().to_pylist()
    assert sorted(got, key=lambda r: r["id"]) == expected, "phlo"
    pyi = sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()
    assert sorted(pyi, key=lambda r: r["id"]) == expected, "pyiceberg"


def rename(lh: phlo.Lakehouse, model: dict[int, Row], old: str, new: str) -> dict[int, Row]:
    with sql_catalog(lh).load_table("raw.t").update_schema() as update:
        update.rename_column(old, new)
    return {k: {(new if c == old else c): v for c, v in r.items()} for k, r in model.items()}


@pytest.mark.parametrize("mode", ["copy-on-write", "merge-on-read"])
def test_files_added_without_field_ids_keep_their_values_through_phlo_writes(lh, tmp_path, mode):
    model = build(lh, tmp_path)
    assert_reads(lh, model)
    model = rename(lh, model, "a", "a2")
    assert_reads(lh, model)

    t = lh.table("raw.t")
    batch = [{"id": 1, "a2": "A1", "b": "B1", "n": -1}, {"id": 6, "a2": "A6", "b": None, "n": 6}]
    result = t.merge(pa.Table.from_pylist(batch, schema=t.schema), "id", write_mode=mode)
    assert (result.rows_updated, result.rows_inserted) == (2, 0)
    model.update({r["id"]: r for r in batch})
    assert_reads(lh, model)

    # Renamed again: the mapping's aliases still find the added files' columns.
    model = rename(lh, model, "b", "b2")
    assert_reads(lh, model)
    assert t.delete(("b2", "=", "b3"), write_mode=mode).rows_deleted == 1
    del model[3]
    assert_reads(lh, model)
    assert t.delete(("n", "=", 12), write_mode=mode).rows_deleted == 1
    del model[2]
    assert_reads(lh, model)

    t.compact()
    assert_reads(lh, model)


NESTED = Schema(
    optional(1, "id", LongType()),
    optional(2, "s", StructType(optional(3, "a", StringType()), optional(4, "b", StringType()))),
    optional(5, "l", ListType(6, StructType(optional(7, "x", LongType())), False)),
)


@pytest.mark.parametrize("mode", ["copy-on-write", "merge-on-read"])
def test_nested_fields_of_files_added_without_field_ids_follow_the_name_mapping(lh, tmp_path, mode):
    """The file's struct holds b before a; PyIceberg renames a (the mapping keeps `a` as an
    alias) and adds fields to the struct and the list's elements."""
    table = sql_catalog(lh).create_table("raw.t", schema=NESTED)
    rows = [{"id": i, "s": {"b": f"b{i}", "a": f"a{i}"}, "l": [{"x": i}]} for i in range(3)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "nested.parquet")
    table.add_files([str(tmp_path / "nested.parquet")])
    with table.update_schema() as update:
        update.rename_column("s.a", "z")
        update.add_column(("s", "c"), StringType())
        update.add_column(("l", "element", "y"), StringType())
    model = {
        i: {"id": i, "s": {"z": f"a{i}", "b": f"b{i}", "c": None}, "l": [{"x": i, "y": None}]}
        for i in range(3)
    }
    assert_reads(lh, model)

    t = lh.table("raw.t")
    batch = [{"id": 1, "s": {"z": "Z", "b": "B", "c": "C"}, "l": [{"x": -1, "y": "Y"}]}]
    t.merge(pa.Table.from_pylist(batch, schema=t.schema), "id", write_mode=mode)
    model[1] = batch[0]
    assert_reads(lh, model)
    t.compact()
    assert_reads(lh, model)
