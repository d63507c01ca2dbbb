"""Decimals stored every way Parquet writers store them — INT32 and INT64 (pyarrow's
`store_decimal_as_integer`, DuckDB's own choice up to 18 digits) and FIXED_LEN_BYTE_ARRAY —
in files added by PyIceberg's `add_files`, whose bounds come from those footers, several row
groups a file. phlo's filters (file and row-group pruning on those statistics), range checks
(answered from those statistics where they can be), merges keyed on a decimal in both write
modes, a delete and compaction agree with a plain-Python model and with PyIceberg's reads."""

from __future__ import annotations

import operator
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import DecimalType, LongType
from tests.outside_support import Row, optional, sql_catalog

import phlo
from phlo import RangeCheck, phlo_quality

SCHEMA = Schema(
    optional(1, "id", LongType()),
    optional(2, "a", DecimalType(9, 2)),
    optional(3, "b", DecimalType(18, 4)),
    optional(4, "c", DecimalType(30, 3)),
)
ARROW = pa.schema(
    [
        ("id", pa.int64()),
        ("a", pa.decimal128(9, 2)),
        ("b", pa.decimal128(18, 4)),
        ("c", pa.decimal128(30, 3)),
    ]
)
OPS = {"=": operator.eq, "<": operator.lt, ">=": operator.ge, ">": operator.gt}


def rows(ids: Iterable[int]) -> list[Row]:
    return [
        {
            "id": i,
            "a": Decimal(i * 37 - 500) / 100,
            "b": Decimal(i * 12345 - 10**6) / 10**4,
            "c": Decimal(i * 10**20 - 5 * 10**21) / 1000,
        }
        for i in ids
    ]


def arrow(batch: list[Row]) -> pa.Table:
    return pa.Table.from_pylist(batch, schema=ARROW)


def written_three_ways(folder: Path) -> list[str]:
    """Rows 0-49 with integer decimals by pyarrow, 50-99 with fixed-length ones by pyarrow,
    100-149 by DuckDB; row groups of ten rows."""
    integer, fixed, by_duckdb = (
        str(folder / n) for n in ("int.parquet", "fixed.parquet", "duck.parquet")
    )
    pq.write_table(
        arrow(rows(range(50))), integer, store_decimal_as_integer=True, row_group_size=10
    )
    pq.write_table(arrow(rows(range(50, 100))), fixed, row_group_size=10)
    con = duckdb.connect()
    con.register("src", arrow(rows(range(100, 150))))
    con.execute(f"COPY (SELECT * FROM src) TO '{by_duckdb}' (FORMAT parquet, ROW_GROUP_SIZE 10)")
    return [integer, fixed, by_duckdb]


def physical_types(path: str) -> list[str]:
    schema = pq.ParquetFile(path).schema
    return [schema.column(i).physical_type for i in (1, 2, 3)]


RANGES = {"a": (-3, 3), "b": (-50, 0.5), "c": (-3 * 10**18, 10**19)}


@phlo_quality(
    table="raw.t",
    full_table=True,
    checks=[RangeCheck(column=c, min_value=lo, max_value=hi) for c, (lo, hi) in RANGES.items()],
)
def decimal_ranges() -> None: ...


def assert_agrees(lh: phlo.Lakehouse, model: dict[int, Row], when: str) -> None:
    expected_failures = {
        f"range_check_{c}": sum(
            not Decimal(str(lo)) <= r[c] <= Decimal(str(hi)) for r in model.values()
        )
        for c, (lo, hi) in RANGES.items()
    }
    assert all(0 < n < len(model) for n in expected_failures.values())
    got = {r.name: r.failed_count for r in decimal_ranges.run(lakehouse=lh)}
    assert got == expected_failures, when
    table = lh.table("raw.t")
    for column in "abc":
        for probe in (3, 77, 149, 200):
            value = rows([probe])[0][column]
            for op, holds in OPS.items():
                expected = sorted(k for k, r in model.items() if holds(r[column], value))
                got = table.scan(filter=(column, op, value)).to_arrow()["id"].to_pylist()
                assert sorted(got) == expected, (when, column, op, value)
    expected_rows = sorted(model.values(), key=lambda r: r["id"])
    assert sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"]) == expected_rows
    theirs = sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()
    assert sorted(theirs, key=lambda r: r["id"]) == expected_rows, when


@pytest.mark.parametrize("write_mode", ["merge-on-read", "copy-on-write"])
def test_decimals_of_every_physical_type_filter_merge_and_compact(lh, tmp_path, write_mode):
    paths = written_three_ways(tmp_path)
    assert {t for p in paths for t in physical_types(p)} == {
        "INT32",
        "INT64",
        "FIXED_LEN_BYTE_ARRAY",
    }
    sql_catalog(lh).create_table("raw.t", schema=SCHEMA).add_files(paths)
    model = {r["id"]: r for r in rows(range(150))}
    assert_agrees(lh, model, "as added")

    t = lh.table("raw.t")
    changed = [{**r, "a": r["a"] + 1} for r in rows([3, 60, 120])] + rows([200])
    result = t.merge(arrow(changed), "b", write_mode=write_mode)
    assert (result.rows_updated, result.rows_inserted) == (3, 1)
    model.update({r["id"]: r for r in changed})
    assert_agrees(lh, model, "after a merge on b")

    changed = [{**r, "id": r["id"] + 1000} for r in rows([4, 70, 130])]
    result = t.merge(arrow(changed), "c", write_mode=write_mode)
    assert (result.rows_updated, result.rows_inserted) == (3, 0)
    model = {k: r for k, r in model.items() if k not in (4, 70, 130)}
    model.update({r["id"]: r for r in changed})
    assert_agrees(lh, model, "after a merge on c")

    cut = Decimal("-3.00")
    assert t.delete(("a", "<", cut), write_mode=write_mode).rows_deleted == sum(
        r["a"] < cut for r in model.values()
    )
    model = {k: r for k, r in model.items() if not r["a"] < cut}
    assert_agrees(lh, model, "after a delete")

    t.compact()
    assert_agrees(lh, model, "after compaction")
