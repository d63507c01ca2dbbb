"""A Parquet file without field ids (columns id, a, b), added by PyIceberg's `add_files`, then
evolved by PyIceberg: b dropped and added again (the name mapping gives `b` to the new field),
a renamed to a2, the new b renamed to a. PyIceberg's mapping now gives both of the file's `a`
and `b` to one field: which column that field reads is the readers' choice. phlo reads what
PyIceberg reads (the last of the file's columns), so its merges and compaction, which rewrite
the file, leave every row as PyIceberg read it before."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import LongType, StringType
from tests.outside_support import Row, optional, sql_catalog

import phlo

SCHEMA = Schema(
    optional(1, "id", LongType()),
    optional(2, "a", StringType()),
    optional(3, "b", StringType()),
)


def evolved(lh: phlo.Lakehouse, folder: Path) -> None:
    path = str(folder / "outside.parquet")
    file = pa.table(
        {"id": pa.array([1, 2, 3], pa.int64()), "a": ["a1", "a2", "a3"], "b": ["b1", "b2", "b3"]}
    )
    pq.write_table(file, path)
    table = sql_catalog(lh).create_table("raw.t", schema=SCHEMA)
    table.add_files([path])
    with table.update_schema() as update:
        update.delete_column("b")
    with table.update_schema() as update:
        update.add_column("b", StringType())
    with table.update_schema() as update:
        update.rename_column("a", "a2")
    with table.update_schema() as update:
        update.rename_column("b", "a")


def pyiceberg_rows(lh: phlo.Lakehouse) -> list[Row]:
    return sorted(
        sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist(), key=lambda r: r["id"]
    )


def phlo_rows(lh: phlo.Lakehouse) -> list[Row]:
    return sorted(lh.table("raw.t").scan().to_arrow().to_pylist(), key=lambda r: r["id"])


@pytest.mark.parametrize("write_mode", ["merge-on-read", "copy-on-write"])
def test_columns_mapped_to_one_field_read_as_pyiceberg_reads_them(lh, tmp_path, write_mode):
    evolved(lh, tmp_path)
    mapping = json.loads(
        sql_catalog(lh).load_table("raw.t").properties["schema.name-mapping.default"]
    )
    new_field = sql_catalog(lh).load_table("raw.t").schema().find_field("a").field_id
    assert {"a", "b"} <= {n for f in mapping if f["field-id"] == new_field for n in f["names"]}

    before = pyiceberg_rows(lh)
    assert phlo_rows(lh) == before

    changed = {"id": 2, "a2": None, "a": "new"}
    lh.table("raw.t").merge(pa.Table.from_pylist([changed]), "id", write_mode=write_mode)
    expected = [changed if r["id"] == 2 else r for r in before]
    assert phlo_rows(lh) == expected
    assert pyiceberg_rows(lh) == expected

    lh.table("raw.t").compact()
    assert phlo_rows(lh) == expected
    assert pyiceberg_rows(lh) == expected
