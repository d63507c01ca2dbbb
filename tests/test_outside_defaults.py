"""Column default values another engine set (PyIceberg's `add_column(..., default_value=...)`,
Iceberg's `initial-default` and `write-default`, which PyIceberg writes even on format v2): a
data file written before the column was added holds the `initial-default` in every row, and a
row written without the column gets the `write-default`. phlo honours both in every read
(scans, filters and their statistics pruning, quality checks, merge keys, deletes, equality
deletes, compaction) and write, and reads what PyIceberg 0.12 reads (it applies
`initial-default` to files lacking the column, filters included); DuckDB reads what a phlo
compaction wrote. Defaults phlo cannot apply (inside a struct, of binary columns) are refused
before anything is written."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import (
    BinaryType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    StructType,
)
from tests.duckdb_support import duckdb_rest
from tests.outside_files_support import commit_deletes, equality_deletes
from tests.outside_support import optional, sql_catalog

import phlo
from phlo import AcceptedValuesCheck, NullCheck, RangeCheck, phlo_quality
from phlo.catalog_server import CatalogServer
from phlo.errors import SchemaError

COLUMNS = ("id", "v", "x", "s", "d", "day")
# What rows of files written before the columns were added hold (initial-default), and what
# rows written without them get (write-default: x's was changed to 6 afterwards).
INITIAL = {"x": 5, "s": "dflt", "d": Decimal("12.34"), "day": dt.date(2024, 1, 2)}
WRITTEN = {**INITIAL, "x": 6}
Model = dict[int, dict[str, Any]]
MODEL: Model = {
    1: {"v": "a", **INITIAL},
    2: {"v": "b", **INITIAL},
    3: {"v": "c", "x": 7, "s": "c", "d": Decimal("1.00"), "day": dt.date(2025, 1, 1)},
}


@pytest.fixture
def defaulted(lh: phlo.Lakehouse) -> phlo.Lakehouse:
    """raw.t: two files of PyIceberg's written before x, s, d and day were added with defaults,
    one after."""
    table = sql_catalog(lh).create_table(
        "raw.t", schema=Schema(optional(1, "id", LongType()), optional(2, "v", StringType()))
    )
    table.append(pa.table({"id": pa.array([1], pa.int64()), "v": ["a"]}))
    table.append(pa.table({"id": pa.array([2], pa.int64()), "v": ["b"]}))
    with table.update_schema() as update:
        update.add_column("x", IntegerType(), default_value=5)
        update.add_column("s", StringType(), default_value="dflt")
        update.add_column("d", DecimalType(9, 2), default_value=Decimal("12.34"))
        update.add_column("day", DateType(), default_value=dt.date(2024, 1, 2))
    with table.update_schema() as update:
        update.set_default_value("x", 6)
    row = {"id": 3, **MODEL[3]}
    table.append(pa.Table.from_pylist([row], schema=table.schema().as_arrow()))
    assert pyiceberg_rows(lh) == MODEL
    return lh


def rows(table: pa.Table) -> Model:
    model = {r.pop("id"): r for r in table.select(list(COLUMNS)).to_pylist()}
    assert len(model) == table.num_rows, "an id repeated"
    return model


def pyiceberg_rows(lh: phlo.Lakehouse) -> Model:
    catalog = sql_catalog(lh)
    try:
        return rows(catalog.load_table("raw.t").scan().to_arrow())
    finally:
        catalog.engine.dispose()


def assert_reads(lh: phlo.Lakehouse, model: Model, when: str, pyiceberg: bool = True) -> None:
    assert rows(lh.table("raw.t").scan().to_arrow()) == model, when
    if pyiceberg:
        assert pyiceberg_rows(lh) == model, when


def filtered(lh: phlo.Lakehouse, *filter: Any) -> set[int]:
    return set(lh.table("raw.t").scan(filter=filter).to_arrow().column("id").to_pylist())


@phlo_quality(
    table="raw.t",
    checks=[
        NullCheck(columns=["x", "s", "d", "day"]),
        RangeCheck("x", min_value=6),
        AcceptedValuesCheck("s", ["c"]),
    ],
)
def defaulted_checks() -> None: ...


# Alone on its column, settled from the files' dictionary pages where they can tell.
@phlo_quality(table="raw.t", checks=[AcceptedValuesCheck("s", ["c"])])
def s_accepted() -> None: ...


def test_reads_and_filters_see_the_initial_default_as_pyiceberg_does(defaulted):
    lh = defaulted
    assert_reads(lh, MODEL, "PyIceberg's table")
    # The old files record no statistics of the columns: not pruned, their rows match.
    for column, value in INITIAL.items():
        assert filtered(lh, column, "=", value) == {1, 2}, column
        assert filtered(lh, column, "!=", value) == {3}, column
        assert filtered(lh, column, "is null") == set(), column
    assert filtered(lh, "x", "in", [5, 9]) == {1, 2}
    assert filtered(lh, "x", "between", [4, 6]) == {1, 2}
    assert filtered(lh, "day", "<", dt.date(2024, 6, 1)) == {1, 2}
    narrow = lh.table("raw.t").scan(columns=["id", "s"], filter=("x", "=", 5)).to_arrow()
    assert sorted(narrow.to_pylist(), key=lambda r: r["id"]) == [
        {"id": 1, "s": "dflt"},
        {"id": 2, "s": "dflt"},
    ]
    # Checks that pass on nulls fail on the defaults of the two old rows.
    results = {r.name: r for r in defaulted_checks.run(None, lakehouse=lh)}
    assert [r.passed for r in results.values()] == [True, False, False], results
    assert [r.failed_count for r in results.values()] == [0, 2, 2], results
    [result] = s_accepted.run(None, lakehouse=lh)
    assert (result.passed, result.failed_count) == (False, 2), result


WRITES: dict[str, tuple[Callable[[phlo.Table], Any], Callable[[Model], Model]]] = {
    "an append without the columns": (
        lambda t: t.append(pa.table({"id": pa.array([4], pa.int64()), "v": ["d"]})),
        lambda m: {**m, 4: {"v": "d", **WRITTEN}},
    ),
    # (1, 5) is the key of row 1, whose x is the initial-default: it is updated.
    "a merge keyed on a defaulted column": (
        lambda t: t.merge(
            pa.table({"id": pa.array([1, 9], pa.int64()), "x": [5, 5], "v": ["A", "N"]}),
            ["id", "x"],
        ),
        lambda m: {**m, 1: {"v": "A", **WRITTEN, "x": 5}, 9: {"v": "N", **WRITTEN, "x": 5}},
    ),
    "a merge-on-read merge": (
        lambda t: t.merge(
            pa.table({"id": pa.array([2], pa.int64()), "v": ["B"]}),
            "id",
            write_mode="merge-on-read",
        ),
        lambda m: {**m, 2: {"v": "B", **WRITTEN}},
    ),
    "a delete on the default": (
        lambda t: t.delete(("x", "=", 5)),
        lambda m: {3: m[3]},
    ),
    "a merge-on-read delete on the default": (
        lambda t: t.delete(("s", "=", "dflt"), write_mode="merge-on-read"),
        lambda m: {3: m[3]},
    ),
    "a compaction": (lambda t: t.compact(), lambda m: m),
}


@pytest.mark.parametrize("write", WRITES)
def test_writes_keep_the_initial_default_and_apply_the_write_default(defaulted, write):
    lh = defaulted
    run, change = WRITES[write]
    run(lh.table("raw.t"))
    model = change(MODEL)
    assert_reads(lh, model, write)
    # A later compaction writes the defaults into the files.
    lh.table("raw.t").compact()
    assert_reads(lh, model, f"{write}, then a compaction")


def test_compaction_writes_the_defaults_which_duckdb_then_reads(defaulted):
    lh = defaulted
    lh.table("raw.t").compact()
    assert_reads(lh, MODEL, "compaction")
    tasks = sql_catalog(lh).load_table("raw.t").scan().plan_files()
    [path] = [Path(task.file.file_path.removeprefix("file://")) for task in tasks]
    stored = pq.read_table(path).to_pylist()
    assert sorted((r["id"], r["x"], r["s"]) for r in stored) == [
        (1, 5, "dflt"),
        (2, 5, "dflt"),
        (3, 7, "c"),
    ]
    with CatalogServer(lh, port=0) as server:
        [got] = duckdb_rest(
            server.uri, "main", ["SELECT id, x, s, day FROM lake.raw.t ORDER BY id"]
        )
    assert got == [
        [1, 5, "dflt", "2024-01-02"],
        [2, 5, "dflt", "2024-01-02"],
        [3, 7, "c", "2025-01-01"],
    ]


def test_equality_deletes_on_a_defaulted_column_delete_the_rows_holding_the_default(defaulted):
    lh = defaulted
    catalog = sql_catalog(lh)
    table = catalog.load_table("raw.t")
    commit_deletes(table, [equality_deletes(table, {"x": [5]})])
    catalog.engine.dispose()
    # PyIceberg does not read equality deletes.
    assert_reads(lh, {3: MODEL[3]}, "equality deletes", pyiceberg=False)
    lh.table("raw.t").merge(pa.table({"id": pa.array([3], pa.int64()), "v": ["C"]}), "id")
    assert_reads(lh, {3: {"v": "C", **WRITTEN}}, "a merge", pyiceberg=False)
    lh.table("raw.t").compact()
    assert_reads(lh, {3: {"v": "C", **WRITTEN}}, "compaction")


def data_files(lh: phlo.Lakehouse) -> set[Path]:
    location = sql_catalog(lh).load_table("raw.t").location()
    return set(Path(location.removeprefix("file://")).rglob("*.parquet"))


REFUSED: dict[str, Callable[[Any], None]] = {
    "a field of a struct": lambda u: u.add_column(("st", "b"), IntegerType(), default_value=1),
    "a binary column": lambda u: u.add_column("b", BinaryType(), default_value=b"xy"),
}


@pytest.mark.parametrize("column", REFUSED)
def test_defaults_phlo_cannot_apply_are_refused_before_anything_is_written(lh, column):
    table = sql_catalog(lh).create_table(
        "raw.t",
        schema=Schema(
            optional(1, "id", LongType()),
            optional(2, "st", StructType(optional(3, "a", LongType()))),
        ),
    )
    struct = pa.array([{"a": 1}], pa.struct([("a", pa.int64())]))
    table.append(pa.table({"id": pa.array([1], pa.int64()), "st": struct}))
    with table.update_schema() as update:
        REFUSED[column](update)
    name = "st.b" if column == "a field of a struct" else "b"
    before, location = data_files(lh), lh.table("raw.t").metadata_location
    phlo_table = lh.table("raw.t")
    attempts = {
        "scan": lambda: phlo_table.scan().to_arrow(),
        "append": lambda: phlo_table.append(pa.table({"id": pa.array([2], pa.int64())})),
        "merge": lambda: phlo_table.merge(pa.table({"id": pa.array([2], pa.int64())}), "id"),
        "delete": lambda: phlo_table.delete(("id", "=", 1)),
        "compaction": lambda: phlo_table.compact(),
    }
    for what, attempt in attempts.items():
        with pytest.raises(SchemaError, match=f"column {name} has an Iceberg initial-default") as e:
            attempt()
        assert "raw.t" in str(e.value) and "cannot apply" in str(e.value), what
        assert data_files(lh) == before, what
        assert lh.table("raw.t").metadata_location == location, what


def test_a_required_column_and_a_promoted_one_keep_their_defaults(defaulted):
    lh = defaulted
    catalog = sql_catalog(lh)
    with catalog.load_table("raw.t").update_schema() as update:
        update.add_column("r", IntegerType(), required=True, default_value=1)
    catalog.engine.dispose()
    table = lh.table("raw.t")
    # phlo's schema evolution promotes x to long; the defaults stay what they were.
    x_long = pa.table({"id": pa.array([4], pa.int64()), "x": pa.array([8], pa.int64())})
    table.append(x_long, schema_evolution="evolve")
    table.append(pa.table({"id": pa.array([5], pa.int64())}))
    got = lh.table("raw.t").scan().to_arrow()
    assert got.schema.field("x").type == pa.int64()
    assert not got.schema.field("r").nullable
    r = {row["id"]: row["r"] for row in got.to_pylist()}
    assert r == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    model = {**MODEL, 4: {"v": None, **WRITTEN, "x": 8}, 5: {"v": None, **WRITTEN}}
    assert_reads(lh, model, "a required column and a promotion")
