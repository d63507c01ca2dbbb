"""phlo.validate against Pandera, case for case: the same failure cases (schema_context,
column, check, check_number, failure value, row), each as many times as Pandera reports it,
for pandas- and polars-backed schemas, with every check evaluated by the engine (none left to
Pandera). Hand-written cases per check kind, frames above the engine's parallel-uniqueness
threshold with planted duplicates, generated schemas and a property-based test.

Failure values are compared as typed values: phlo reports each as Arrow's text, Pandera-pandas
as the Python object and Pandera-polars as polars' text, so both are parsed into the column's
Arrow type first. Where phlo deliberately differs from Pandera (docs/validation.md, "Where phlo
differs from Pandera") a test asserts phlo's documented behaviour instead."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import random
from collections import Counter
from typing import Any

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pandera.pandas as pa
import pandera.polars as pal
import polars as pl
import pyarrow
import pytest
from hypothesis import HealthCheck, given, settings

import phlo
from phlo._arrow import as_arrow
from phlo.validation import ValidationReport

Case = tuple[str, str | None, str, int | None, Any, int | None]
D = decimal.Decimal


# -- Comparing failure cases -----------------------------------------------------------------


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _typed(value: Any, arrow_type: pyarrow.DataType | None) -> Any:
    """`value` (text, or a pandas/Python object) as a Python value of `arrow_type`; null and
    NaN become None (both are "missing" to Pandera and phlo)."""
    if _missing(value):
        return None
    if arrow_type is None:
        return value
    if pyarrow.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if arrow_type in (pyarrow.string(), pyarrow.large_string(), pyarrow.string_view()):
        return str(value)
    if isinstance(value, str):
        out = pyarrow.array([value]).cast(arrow_type).to_pylist()[0]
    elif not isinstance(value, pd.Timestamp):
        out = pyarrow.array([value], type=arrow_type).to_pylist()[0]
    else:
        out = value
    if isinstance(out, pd.Timestamp):  # pyarrow's nanosecond values, pandas' timestamps
        out = out.to_pydatetime()
    if isinstance(out, dt.datetime) and out.tzinfo is not None:
        return out.astimezone(dt.UTC)  # the instant, whatever zone it is written in
    return None if _missing(out) else out


def _row(text: str, types: dict[str, pyarrow.DataType]) -> tuple[tuple[str, Any], ...]:
    """A row reported as JSON (Pandera-polars' multi-column duplicates), typed per column."""
    return tuple(sorted((k, _typed(v, types.get(k))) for k, v in json.loads(text).items()))


def _normalize(
    rows: list[dict[str, Any]],
    types: dict[str, pyarrow.DataType],
    inputs: dict[str, pyarrow.DataType],
) -> list[Case]:
    out: list[Case] = []
    for r in rows:
        number = None if _missing(r["check_number"]) else int(r["check_number"])
        index = None if _missing(r["index"]) else int(r["index"])
        column = None if r["column"] is None else str(r["column"])
        check = str(r["check"])
        case = r["failure_case"]
        if index is None:
            # A wrong type's failure case names the type in its library's own words (Pandera:
            # numpy/polars, phlo: Arrow); asserted separately.
            case = "<dtype>" if check.startswith("dtype(") else str(case)
        elif (
            check == "multiple_fields_uniqueness"
            and r["schema_context"] == "DataFrameSchema"
            and column not in types
        ):
            case = _row(case, types)
        elif check.startswith(("coerce_dtype(", "dtype(")):
            case = _typed(case, inputs.get(column or ""))  # the value that did not convert
        else:
            case = _typed(case, types.get(column or ""))
        out.append((str(r["schema_context"]), column, check, number, case, index))
    return sorted(out, key=repr)


def pandera_rows(schema: Any, frame: Any) -> list[dict[str, Any]]:
    try:
        schema.validate(frame, lazy=True)
    except (pa.errors.SchemaErrors, pal.errors.SchemaErrors) as exc:
        cases = exc.failure_cases
        return cases.to_dicts() if hasattr(cases, "to_dicts") else cases.to_dict("records")
    return []


def native_report(schema: Any, data: Any) -> ValidationReport:
    """phlo's report, after asserting that the engine evaluated every check of the schema."""
    validator = phlo.Validator(schema)
    assert validator.pandera_checks == [], "a check was compiled for Pandera"
    report = validator.report(data)
    assert report.pandera_checks == [], "a check fell back to Pandera at run time"
    assert report.native_checks == validator.native_checks
    declared = sum(len(c.checks) for c in validator.plan.schema.columns.values())
    assert len(report.native_checks) == declared
    return report


def assert_same_as_pandera(schema: Any, frame: Any, data: Any = None) -> list[Case]:
    """phlo on `data` (default: `frame`) reports exactly Pandera's failure cases on `frame`,
    with exact per-check counts; returns them."""
    data = frame if data is None else data
    report = native_report(schema, data)
    types = {f.name: f.type for f in report.table.schema}
    inputs = {f.name: f.type for f in pyarrow.table(as_arrow(data)).schema}
    expected = _normalize(pandera_rows(schema, frame), types, inputs)
    got = _normalize(report.failure_cases.to_pylist(), types, inputs)
    only_phlo, only_pandera = Counter(got) - Counter(expected), Counter(expected) - Counter(got)
    assert Counter(got) == Counter(expected), (
        f"phlo only: {sorted(only_phlo, key=repr)}\nPandera only: {sorted(only_pandera, key=repr)}"
    )
    counts = Counter((c[1], c[2], c[3]) for c in expected)
    assert {
        (r["column"], r["check"], r["check_number"]): r["count"] for r in report.records
    } == counts
    assert report.valid == (not expected)
    return expected


_POLARS_TYPES = {"i": pl.Int64, "f": pl.Float64, "s": pl.String, "t": pl.Datetime("us", "UTC")}


def polars_twin(schema: pa.DataFrameSchema) -> pal.DataFrameSchema:
    """The same contract as a polars schema; a column's type is named by its first letter."""
    columns = {
        name: pal.Column(
            _POLARS_TYPES[name[0]],
            col.checks,
            nullable=col.nullable,
            unique=col.unique,
            required=col.required,
        )
        for name, col in schema.columns.items()
    }
    return pal.DataFrameSchema(columns, name=schema.name, unique=schema.unique)


# -- One check kind at a time, pandas and polars ------------------------------------------------


def test_nullable_counts_null_and_nan_as_missing():
    schema = pa.DataFrameSchema(
        {
            "f": pa.Column(float, nullable=False),
            "s": pa.Column(str, nullable=False),
            "i": pa.Column("Int64", nullable=False),
            "f_ok": pa.Column(float, nullable=True),
        },
        name="S",
    )
    frame = pd.DataFrame(
        {
            "f": [1.0, np.nan, None, 2.0],
            "s": ["a", None, "b", None],
            "i": pd.array([None, 1, 2, None], dtype="Int64"),
            "f_ok": [None, 1.0, np.nan, 2.0],
        }
    )
    cases = assert_same_as_pandera(schema, frame)
    assert Counter(c[1] for c in cases) == {"f": 2, "s": 2, "i": 2}
    polars_frame = pl.DataFrame(
        {
            "f": [1.0, float("nan"), None, 2.0],
            "s": ["a", None, "b", None],
            "i": [None, 1, 2, None],
            "f_ok": [None, 1.0, float("nan"), 2.0],
        }
    )
    assert assert_same_as_pandera(polars_twin(schema), polars_frame) == cases


def test_ranges_and_comparisons():
    checks = [
        pa.Check.ge(0),
        pa.Check.le(10),
        pa.Check.gt(-1),
        pa.Check.lt(10),
        pa.Check.in_range(1, 9, include_min=False, include_max=True),
        pa.Check.in_range(1, 9, include_min=True, include_max=False),
        pa.Check.eq(5),
        pa.Check.ne(5),
        pa.Check.ge(0.5),  # a fractional bound on an integer column
    ]
    schema = pa.DataFrameSchema(
        {
            "i": pa.Column("Int64", checks, nullable=True),
            "f": pa.Column(float, [*checks[:8], pa.Check.lt(9.75)], nullable=True),
        },
        name="S",
    )
    ints = [-3, -1, 0, 1, 5, 9, 10, 11, None]
    floats = [-0.5, -0.0, 0.0, 1.0, 5.0, 9.0, 9.75, 10.0, None]
    frame = pd.DataFrame({"i": pd.array(ints, dtype="Int64"), "f": floats})
    cases = assert_same_as_pandera(schema, frame)
    assert len(cases) > 30
    polars_frame = pl.DataFrame({"i": ints, "f": floats})
    assert assert_same_as_pandera(polars_twin(schema), polars_frame) == cases


def test_isin_and_notin_short_and_long_lists():
    long_ints = list(range(0, 40, 2))  # longer than the engine's short-list threshold
    long_strs = [f"v{i}" for i in range(0, 40, 2)]
    schema = pa.DataFrameSchema(
        {
            "i": pa.Column(
                "Int64",
                [pa.Check.isin([1, 2, 3]), pa.Check.isin(long_ints), pa.Check.notin([2, 4])],
                nullable=True,
            ),
            "f": pa.Column(
                float, [pa.Check.isin([0.0, 1.5]), pa.Check.notin([2.5])], nullable=True
            ),
            "s": pa.Column(
                str,
                [pa.Check.isin(["a", "bb", "é"]), pa.Check.isin(long_strs), pa.Check.notin(["v2"])],
                nullable=True,
            ),
        },
        name="S",
    )
    frame = pd.DataFrame(
        {
            "i": pd.array([1, 2, 4, 5, None, 38, 39], dtype="Int64"),
            "f": [0.0, -0.0, 1.5, 2.5, None, 3.0, 1.5],
            "s": ["a", "bb", "é", "v2", None, "v38", "v39"],
        }
    )
    cases = assert_same_as_pandera(schema, frame)
    assert len(cases) > 15
    polars_frame = pl.DataFrame(
        {
            "i": [1, 2, 4, 5, None, 38, 39],
            "f": [0.0, -0.0, 1.5, 2.5, None, 3.0, 1.5],
            "s": ["a", "bb", "é", "v2", None, "v38", "v39"],
        }
    )
    assert assert_same_as_pandera(polars_twin(schema), polars_frame) == cases


def test_string_checks():
    schema = pa.DataFrameSchema(
        {
            "s": pa.Column(
                str,
                [
                    pa.Check.str_matches(r"[a-c]+\d?"),
                    pa.Check.str_length(2, 3),
                    pa.Check.str_length(1),
                    pa.Check.str_contains("b"),
                    pa.Check.str_startswith("a"),
                    pa.Check.str_endswith("c"),
                    pa.Check.str_matches("ü"),
                ],
                nullable=True,
            )
        },
        name="S",
    )
    values = ["abc", "ab1c", "xa", "", "üü", "ü", "abcd", None, "a"]
    cases = assert_same_as_pandera(schema, pd.DataFrame({"s": values}))
    assert len(cases) > 20
    # str_length counts characters, not bytes.
    assert ("Column", "s", "str_length(2, 3)", 1, "üü", 4) not in cases
    assert assert_same_as_pandera(polars_twin(schema), pl.DataFrame({"s": values})) == cases


def test_uniqueness_of_floats_strings_and_integers():
    schema = pa.DataFrameSchema(
        {
            "f": pa.Column(float, unique=True, nullable=True),
            "s": pa.Column(str, unique=True, nullable=True),
            "i": pa.Column("Int64", unique=True, nullable=True),
        },
        name="S",
    )
    f = [0.0, -0.0, float("nan"), float("nan"), None, None, 1.5, 1.5, 2.0]
    s = ["a", "a", None, None, "", "", "b", "é", "é"]
    i = [1, 1, None, None, 2, 3, 3, 3, 4]
    frame = pd.DataFrame({"f": f, "s": s, "i": pd.array(i, dtype="Int64")})
    cases = assert_same_as_pandera(schema, frame)
    # pandas: missing keys are not duplicates; 0.0 and -0.0 are the same number.
    assert {c[5] for c in cases if c[1] == "f"} == {0, 1, 6, 7}
    polars_cases = assert_same_as_pandera(
        polars_twin(schema), pl.DataFrame({"f": f, "s": s, "i": i})
    )
    # polars: nulls are equal keys, and so are NaNs.
    assert {c[5] for c in polars_cases if c[1] == "f"} == {0, 1, 2, 3, 4, 5, 6, 7}


def test_uniqueness_across_columns():
    schema = pa.DataFrameSchema(
        {
            "s": pa.Column(str, nullable=True),
            "i": pa.Column("Int64", nullable=True),
            "f": pa.Column(float, nullable=True),
        },
        name="S",
        unique=["s", "i", "f"],
    )
    a = ["k", "k", "k", None, None, "k", "j", "j"]
    b = [1, 1, 2, 5, 5, None, 1, 1]
    x = [0.0, -0.0, 1.0, 2.0, 2.0, None, float("nan"), float("nan")]
    frame = pd.DataFrame({"s": a, "i": pd.array(b, dtype="Int64"), "f": x})
    cases = assert_same_as_pandera(schema, frame)
    # pandas: missing values are equal key parts but not failure cases.
    assert {c[5] for c in cases} == {0, 1, 3, 4, 6, 7}
    assert {c[5] for c in cases if c[1] == "s"} == {0, 1, 6, 7}
    polars_frame = pl.DataFrame({"s": a, "i": b, "f": x})
    polars_cases = assert_same_as_pandera(polars_twin(schema), polars_frame)
    assert {c[5] for c in polars_cases} == {0, 1, 3, 4, 6, 7}


def test_uniqueness_across_columns_uses_the_columns_present():
    schema = pa.DataFrameSchema(
        {"s": pa.Column(str), "i": pa.Column("Int64"), "f": pa.Column(float, required=False)},
        name="S",
        unique=["s", "i", "f"],
    )
    s, i = ["a", "a", "b", "a"], [1, 1, 1, 2]
    cases = assert_same_as_pandera(schema, pd.DataFrame({"s": s, "i": pd.array(i, dtype="Int64")}))
    assert {c[5] for c in cases} == {0, 1}
    polars_cases = assert_same_as_pandera(polars_twin(schema), pl.DataFrame({"s": s, "i": i}))
    assert {c[5] for c in polars_cases} == {0, 1}


def test_categorical_and_dictionary_columns():
    categories = pd.CategoricalDtype(["a", "b", "z"])
    schema = pa.DataFrameSchema(
        {
            "c": pa.Column(
                categories,
                [pa.Check.isin(["a", "b"]), pa.Check.str_length(1, 1), pa.Check.ne("b")],
                unique=True,
                nullable=False,
            )
        },
        name="S",
    )
    values = ["a", "b", "z", "a", None]
    frame = pd.DataFrame({"c": pd.Categorical(values, dtype=categories)})
    cases = assert_same_as_pandera(schema, frame)
    assert {c[2] for c in cases} == {
        "not_nullable",
        "field_uniqueness",
        "isin(['a', 'b'])",
        "not_equal_to(b)",
    }
    # Pandera-polars has no string checks on categoricals (it fails the whole column).
    polars_checks = [pa.Check.isin(["a", "b"]), pa.Check.ne("b")]
    polars_cases = [c for c in cases if c[2] != "str_length(1, 1)"]
    for polars_type in (pl.Categorical, pl.Enum(["a", "b", "z"])):
        polars_schema = pal.DataFrameSchema(
            {"c": pal.Column(polars_type, polars_checks, unique=True)}, name="S"
        )
        polars_frame = pl.DataFrame({"c": values}, schema={"c": polars_type})
        got = assert_same_as_pandera(polars_schema, polars_frame)
        assert [c[:3] + c[4:] for c in got] == [c[:3] + c[4:] for c in polars_cases]


def test_decimals():
    checks = [
        pa.Check.ge(D("0")),
        pa.Check.lt(D("10.5")),
        pa.Check.isin([D("1.50"), D("2")]),
        pa.Check.in_range(D("1.5"), D("2.25")),
    ]
    values = [D("1.50"), D("1.5"), D("-1"), D("10.50"), None, D("2.00"), D("2.25")]
    arrow_dtype = pd.ArrowDtype(pyarrow.decimal128(6, 2))
    schema = pa.DataFrameSchema(
        {"d": pa.Column(arrow_dtype, checks, unique=True, nullable=False)}, name="S"
    )
    cases = assert_same_as_pandera(schema, pd.DataFrame({"d": pd.array(values, dtype=arrow_dtype)}))
    assert ("Column", "d", "field_uniqueness", None, D("1.50"), 1) in cases
    polars_schema = pal.DataFrameSchema(
        {"d": pal.Column(pl.Decimal(6, 2), checks, unique=True, nullable=False)}, name="S"
    )
    polars_frame = pl.DataFrame({"d": values}, schema={"d": pl.Decimal(6, 2)})
    assert assert_same_as_pandera(polars_schema, polars_frame) == cases


def test_timestamps_with_time_zones():
    paris = pd.to_datetime(
        ["2024-01-01 00:30", "2024-01-01 02:00", None, "2024-01-01 00:30", "2024-03-31 03:00"]
    ).tz_localize("Europe/Paris")
    bound = pd.Timestamp("2024-01-01 01:00", tz="Europe/Paris")
    checks = [pa.Check.ge(bound), pa.Check.lt(pd.Timestamp("2024-02-01", tz="Europe/Paris"))]
    schema = pa.DataFrameSchema(
        {"t": pa.Column(pd.DatetimeTZDtype(tz="Europe/Paris"), checks, unique=True)}, name="S"
    )
    cases = assert_same_as_pandera(schema, pd.DataFrame({"t": paris.as_unit("ns")}))
    assert len(cases) == 6
    polars_checks = [
        pa.Check.ge(bound.to_pydatetime()),
        pa.Check.lt(dt.datetime(2024, 2, 1, tzinfo=bound.tzinfo)),
    ]
    polars_schema = pal.DataFrameSchema(
        {"t": pal.Column(pl.Datetime("us", "Europe/Paris"), polars_checks, unique=True)}, name="S"
    )
    polars_frame = pl.from_pandas(pd.DataFrame({"t": paris.as_unit("us")}))
    assert [c[1:] for c in assert_same_as_pandera(polars_schema, polars_frame)] == [
        c[1:] for c in cases
    ]


def test_wrong_dtype_still_runs_the_checks():
    schema = pa.DataFrameSchema(
        {"n": pa.Column("int64", [pa.Check.ge(0), pa.Check.isin([1, 2])])}, name="S"
    )
    frame = pd.DataFrame({"n": np.array([1, -2, 3], dtype="int32")})
    cases = assert_same_as_pandera(schema, frame)
    assert {c[2] for c in cases} == {
        "dtype('int64')",
        "greater_than_or_equal_to(0)",
        "isin([1, 2])",
    }
    polars_schema = pal.DataFrameSchema(
        {"n": pal.Column(pl.Int64, schema.columns["n"].checks)}, name="S"
    )
    polars_frame = pl.DataFrame({"n": [1, -2, 3]}, schema={"n": pl.Int32})
    polars_cases = assert_same_as_pandera(polars_schema, polars_frame)
    assert [c[2:] for c in polars_cases if c[5] is not None] == [
        c[2:] for c in cases if c[5] is not None
    ]
    # Documented: the failure case of a wrong type names the Arrow type.
    report = native_report(schema, frame)
    dtype_case = [r for r in report.failure_cases.to_pylist() if r["check"] == "dtype('int64')"]
    assert dtype_case == [
        {
            "schema_context": "Column",
            "column": "n",
            "check": "dtype('int64')",
            "check_number": None,
            "failure_case": "Int32",
            "index": None,
        }
    ]


# -- Differential testing over generated schemas ------------------------------------------

_BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _column_values(rng: random.Random, kind: str, n: int) -> list:
    if kind == "int":
        return [rng.randint(-20, 20) for _ in range(n)]
    if kind == "float":
        return [round(rng.uniform(-20, 20), 2) for _ in range(n)]
    if kind == "str":
        return [rng.choice(["a", "ab", "abc", "b", "ba", "xyz", "é", ""]) for _ in range(n)]
    return [_BASE + dt.timedelta(days=rng.randint(-10, 10)) for _ in range(n)]


def _checks(rng: random.Random, kind: str) -> list:
    # Lists of a float column hold floats (polars refuses ints there; pandas takes either).
    cast = float if kind == "float" else int
    if kind in ("int", "float"):
        pool = [
            lambda: pa.Check.ge(rng.randint(-15, 0)),
            lambda: pa.Check.gt(rng.randint(-15, 0)),
            lambda: pa.Check.le(rng.randint(0, 15)),
            lambda: pa.Check.lt(rng.randint(0, 15)),
            lambda: pa.Check.eq(rng.randint(-2, 2)),
            lambda: pa.Check.ne(rng.randint(-2, 2)),
            lambda: pa.Check.in_range(
                rng.randint(-15, 0), rng.randint(0, 15), rng.random() < 0.5, rng.random() < 0.5
            ),
            lambda: pa.Check.isin(
                [cast(v) for v in rng.sample(range(-20, 21), rng.choice([3, 20]))]
            ),
            lambda: pa.Check.notin([cast(v) for v in rng.sample(range(-20, 21), 5)]),
        ]
    elif kind == "str":
        pool = [
            lambda: pa.Check.isin(["a", "ab", "b", "xyz"]),
            lambda: pa.Check.notin(["ba", "é"]),
            lambda: pa.Check.str_length(rng.randint(0, 2), rng.randint(2, 3)),
            lambda: pa.Check.str_length(rng.randint(1, 2)),
            lambda: pa.Check.str_matches(rng.choice(["a", "[ab]+$", "x.z"])),
            lambda: pa.Check.str_contains(rng.choice(["b", "^a", "z$"])),
            lambda: pa.Check.str_startswith(rng.choice(["a", "x"])),
            lambda: pa.Check.str_endswith(rng.choice(["b", "c"])),
            lambda: pa.Check.eq("a"),
        ]
    else:
        pool = [
            lambda: pa.Check.ge(_BASE - dt.timedelta(days=rng.randint(0, 8))),
            lambda: pa.Check.lt(_BASE + dt.timedelta(days=rng.randint(0, 8))),
        ]
    return [rng.choice(pool)() for _ in range(rng.randint(0, 3))]


def _generated_case(seed: int) -> tuple[pa.DataFrameSchema, pd.DataFrame]:
    rng = random.Random(seed)
    n = rng.randint(5, 60)
    dtypes = {"int": "Int64", "float": "float64", "str": str, "ts": pd.DatetimeTZDtype(tz="UTC")}
    columns, data = {}, {}
    for c in range(rng.randint(1, 5)):
        kind = rng.choice(list(dtypes))
        name = f"{kind}_{c}"
        values = _column_values(rng, kind, n)
        if rng.random() < 0.5:  # inject nulls
            for i in rng.sample(range(n), rng.randint(1, 3)):
                values[i] = None
        columns[name] = pa.Column(
            dtypes[kind],
            _checks(rng, kind),
            nullable=rng.random() < 0.5,
            unique=rng.random() < 0.2,
        )
        data[name] = pd.Series(values, dtype=dtypes[kind])
    unique = None
    if len(columns) > 1 and rng.random() < 0.3:
        unique = rng.sample(list(columns), 2)
    return pa.DataFrameSchema(columns, name=f"Generated{seed}", unique=unique), pd.DataFrame(data)


@pytest.mark.parametrize("seed", range(60))
def test_generated_schemas_fail_exactly_where_pandera_fails(seed):
    schema, frame = _generated_case(seed)
    assert_same_as_pandera(schema, frame)


@pytest.mark.parametrize("seed", range(0, 60, 2))
def test_generated_polars_schemas_fail_exactly_where_pandera_polars_fails(seed):
    schema, frame = _generated_case(seed)
    data = pl.from_pandas(frame).with_columns(pl.col(pl.Datetime).dt.cast_time_unit("us"))
    assert_same_as_pandera(polars_twin(schema), data)


def test_a_check_across_kinds_is_left_to_pandera():
    # Text where a number is declared (no coercion): comparing "10" with 5 is Pandera's to
    # judge (its backend fails the whole column); the engine does not cast the operand.
    checks = [pa.Check.ge(5), pa.Check.str_length(1, 1)]
    schema = pa.DataFrameSchema({"n": pa.Column("int64", checks)}, name="S")
    frame = pd.DataFrame({"n": ["10", "7", "x"]})
    report = phlo.Validator(schema).report(frame)
    assert report.native_checks == ["n: str_length(1, 1)"]
    assert report.pandera_checks == ["n: greater_than_or_equal_to(5)"]
    cases = {(r["check"], r["check_number"], r["index"]) for r in report.failure_cases.to_pylist()}
    pandera = {
        (r["check"], r["check_number"], _index(r["index"])) for r in pandera_rows(schema, frame)
    }
    # The wrong type: one case naming the Arrow type (Pandera-pandas lists "x", the value
    # that would not convert).
    assert ("dtype('int64')", None, None) in cases and ("dtype('int64')", None, 2) in pandera
    assert (
        {c for c in cases if c[1] is not None}
        == {c for c in pandera if c[1] is not None}
        == {
            ("greater_than_or_equal_to(5)", 0, None),
            ("str_length(1, 1)", 1, 0),
        }
    )


def _index(value: Any) -> int | None:
    return None if _missing(value) else int(value)


# -- Frames above the engine's parallel-uniqueness threshold -------------------------------------

# rust/phlo-core/src/validate/unique.rs: SMALL_INPUT; above it keys are radix-partitioned and
# checked on all cores.
PARALLEL_UNIQUE_ROWS = 1 << 16


def _planted_duplicates(n: int) -> tuple[dict[str, list[Any]], dict[str, set[int]]]:
    """Columns of `n` rows, unique but for planted duplicates (pairs and triples, early rows
    copied far later, so into other batches, partitions and threads; nulls, NaN and -0.0 in
    keys), and the rows a plain Python model says are duplicated, per key."""
    rng = random.Random(7)
    ids = list(range(n))
    rng.shuffle(ids)
    i_id: list[Any] = list(ids)
    s_code: list[Any] = [f"c{v}" for v in ids]
    f_val: list[Any] = [float(v) + 0.5 for v in ids]
    i_k: list[Any] = [v // 3 for v in ids]
    s_k: list[Any] = [str(v % 3) for v in ids]
    early = rng.sample(range(n // 4), 90)
    late = rng.sample(range(n // 2, n), 90)
    for a, b in zip(early[:40], late[:40], strict=True):
        i_id[b] = i_id[a]
    for a, b in zip(early[40:50], late[40:50], strict=True):
        i_id[b] = i_id[a]
        i_id[b - 1] = i_id[a]  # a triple
        s_code[b] = s_code[a]
    for r in late[50:60]:
        s_code[r] = None  # null codes: equal keys, but missing
    for a, b in zip(early[60:75], late[60:75], strict=True):
        i_k[b], s_k[b] = i_k[a], s_k[a]
    for r in late[75:80]:
        i_k[r], s_k[r] = None, "x"  # a null key part, five times
    f_val[early[80]], f_val[late[80]] = 0.0, -0.0
    for r in (*early[81:84], *late[81:84]):
        f_val[r] = float("nan")
    f_val[late[84]] = f_val[late[85]] = None
    columns = {"i_id": i_id, "s_code": s_code, "f_val": f_val, "i_k": i_k, "s_k": s_k}

    def canonical(v: Any) -> Any:
        return (
            ("missing" if _missing(v) else v)
            if not isinstance(v, float)
            else ("missing" if math.isnan(v) else v + 0.0)
        )

    def duplicated(keys: list[Any]) -> set[int]:
        counts = Counter(keys)
        return {r for r, k in enumerate(keys) if counts[k] > 1}

    oracle = {
        name: duplicated([canonical(v) for v in columns[name]])
        for name in ("i_id", "s_code", "f_val")
    }
    oracle["i_k+s_k"] = duplicated(list(zip(map(canonical, i_k), s_k, strict=True)))
    return columns, oracle


def _in_batches(table: pyarrow.Table, size: int) -> pyarrow.Table:
    """`table` as record batches of `size` rows, so that the engine works across batches."""
    return pyarrow.Table.from_batches(table.combine_chunks().to_batches(max_chunksize=size))


def test_uniqueness_above_the_parallel_threshold_finds_exactly_the_planted_duplicates():
    n = 3 * PARALLEL_UNIQUE_ROWS + 123
    columns, oracle = _planted_duplicates(n)
    assert len(oracle["i_id"]) == 40 * 2 + 10 * 3 and len(oracle["i_k+s_k"]) == 15 * 2 + 5
    schema = pa.DataFrameSchema(
        {
            "i_id": pa.Column("Int64", unique=True),
            "s_code": pa.Column(str, unique=True, nullable=True),
            "f_val": pa.Column(float, unique=True, nullable=True),
            "i_k": pa.Column("Int64", nullable=True),
            "s_k": pa.Column(str),
        },
        name="Big",
        unique=["i_k", "s_k"],
    )
    frame = pd.DataFrame(
        {
            **columns,
            "i_id": pd.array(columns["i_id"], dtype="Int64"),
            "i_k": pd.array(columns["i_k"], dtype="Int64"),
        }
    )
    chunked = _in_batches(pyarrow.Table.from_pandas(frame, preserve_index=False), n // 7 + 1)
    assert len(chunked.to_batches()) == 7
    cases = assert_same_as_pandera(schema, frame, chunked)
    rows = lambda column, check: {c[5] for c in cases if c[1] == column and c[2] == check}  # noqa: E731
    assert rows("i_id", "field_uniqueness") == oracle["i_id"]
    # pandas: missing values are equal keys but are not failure cases.
    assert rows("s_code", "field_uniqueness") == {
        r for r in oracle["s_code"] if columns["s_code"][r] is not None
    }
    assert rows("f_val", "field_uniqueness") == {
        r for r in oracle["f_val"] if not _missing(columns["f_val"][r])
    }
    assert rows("s_k", "multiple_fields_uniqueness") == oracle["i_k+s_k"]

    # NaN stays NaN in polars (pandas made it null).
    nan = pl.Series("f_val", columns["f_val"], dtype=pl.Float64, nan_to_null=False)
    polars_frame = pl.DataFrame(columns).with_columns(nan)
    polars_data = _in_batches(polars_frame.to_arrow(), n // 5 + 1)
    assert len(polars_data.to_batches()) == 5
    polars_cases = assert_same_as_pandera(polars_twin(schema), polars_frame, polars_data)
    rows = lambda column, check: {c[5] for c in polars_cases if c[1] == column and c[2] == check}  # noqa: E731
    assert rows("i_id", "field_uniqueness") == oracle["i_id"]
    assert rows("s_code", "field_uniqueness") == oracle["s_code"]
    nan_or_null = {r for r in oracle["f_val"] if _missing(columns["f_val"][r])}
    # polars: NaN and null are different keys, each duplicated here.
    assert rows("f_val", "field_uniqueness") == oracle["f_val"] and len(nan_or_null) == 8
    assert rows("Big", "multiple_fields_uniqueness") == oracle["i_k+s_k"]


# -- Property-based: random small contracts and frames ------------------------------------------

_VALUES = {
    "i": st.one_of(st.none(), st.integers(-3, 3)),
    "f": st.one_of(st.none(), st.sampled_from([0.0, -0.0, 1.5, -2.0, 3.0, float("nan")])),
    "s": st.one_of(st.none(), st.sampled_from(["", "a", "ab", "b", "é", "abc", "ba"])),
    "t": st.one_of(st.none(), st.sampled_from([_BASE + dt.timedelta(hours=h) for h in (-1, 0, 5)])),
}
_INSTANT = st.sampled_from([_BASE, _BASE + dt.timedelta(hours=2)])
_NUMBER = st.integers(-3, 3)
_CHECKS = {
    "i": [
        st.builds(pa.Check.ge, _NUMBER),
        st.builds(pa.Check.lt, _NUMBER),
        st.builds(pa.Check.ne, _NUMBER),
        st.builds(
            pa.Check.in_range, st.integers(-3, 0), st.integers(1, 4), st.booleans(), st.booleans()
        ),
        st.builds(pa.Check.isin, st.lists(_NUMBER, min_size=1, max_size=4)),
        st.builds(pa.Check.notin, st.lists(_NUMBER, min_size=1, max_size=4)),
    ],
    "f": [
        st.builds(pa.Check.ge, _NUMBER),
        st.builds(pa.Check.le, st.sampled_from([0, 1.5, -0.0])),
        st.builds(pa.Check.gt, st.sampled_from([-2.0, 0.0])),
        st.builds(pa.Check.eq, st.sampled_from([0.0, 1.5])),
        st.builds(
            pa.Check.isin, st.lists(st.sampled_from([0.0, 1.5, 3.0]), min_size=1, max_size=3)
        ),
    ],
    "s": [
        st.builds(pa.Check.str_length, st.integers(0, 1), st.integers(1, 3)),
        st.builds(pa.Check.str_matches, st.sampled_from(["a", "[ab]+$", "é|b"])),
        st.builds(pa.Check.str_contains, st.sampled_from(["b", "^a", "a$"])),
        st.builds(pa.Check.str_startswith, st.sampled_from(["a", "b"])),
        st.builds(pa.Check.str_endswith, st.sampled_from(["a", "c"])),
        st.builds(
            pa.Check.isin, st.lists(st.sampled_from(["a", "ab", "é", ""]), min_size=1, max_size=3)
        ),
        st.builds(pa.Check.ne, st.sampled_from(["a", ""])),
    ],
    "t": [
        st.builds(pa.Check.ge, _INSTANT),
        st.builds(pa.Check.lt, _INSTANT),
        st.builds(pa.Check.ne, _INSTANT),
    ],
}
_PANDAS_TYPES = {"i": "Int64", "f": "float64", "s": str, "t": pd.DatetimeTZDtype(tz="UTC")}


@st.composite
def contracts(draw: st.DrawFn) -> tuple[pa.DataFrameSchema, dict[str, list[Any]], int]:
    """A pandas schema over 1-3 columns (named by kind) with random checks, nullability and
    uniqueness, the rows to validate, and the size of the batches phlo reads them in."""
    kinds = draw(st.lists(st.sampled_from("ifst"), min_size=1, max_size=3))
    n = draw(st.integers(1, 12))
    columns, data = {}, {}
    for c, kind in enumerate(kinds):
        name = f"{kind}{c}"
        checks = draw(st.lists(st.one_of(_CHECKS[kind]), max_size=3))
        columns[name] = pa.Column(
            _PANDAS_TYPES[kind],
            checks,
            nullable=draw(st.booleans()),
            unique=draw(st.booleans()),
        )
        data[name] = draw(st.lists(_VALUES[kind], min_size=n, max_size=n))
    unique = draw(st.none() | st.just(list(columns))) if len(columns) > 1 else None
    schema = pa.DataFrameSchema(columns, name="Drawn", unique=unique)
    return schema, data, draw(st.integers(1, n))


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(contracts())
def test_random_contracts_fail_exactly_where_pandera_fails(contract):
    schema, data, batch_rows = contract
    frame = pd.DataFrame(
        {name: pd.Series(values, dtype=_PANDAS_TYPES[name[0]]) for name, values in data.items()}
    )
    table = pyarrow.Table.from_pandas(frame, preserve_index=False)
    assert_same_as_pandera(schema, frame, _in_batches(table, batch_rows))
    polars_types = {name: _POLARS_TYPES[name[0]] for name in data}
    polars_frame = pl.DataFrame(data, schema=polars_types)
    polars_data = _in_batches(polars_frame.to_arrow(), batch_rows)
    assert_same_as_pandera(polars_twin(schema), polars_frame, polars_data)


# -- Where phlo deliberately differs (docs/validation.md) ----------------------------------------


def test_schema_level_failures_of_an_unnamed_schema_are_named_dataframeschema():
    schema = pa.DataFrameSchema({"a": pa.Column(float), "z": pa.Column(int)}, strict=True)
    frame = pd.DataFrame({"a": [1.0], "q": [1]})
    pandera = {(r["check"], r["column"], r["failure_case"]) for r in pandera_rows(schema, frame)}
    assert pandera == {("column_in_schema", None, "q"), ("column_in_dataframe", None, "z")}
    cases = {
        (r["check"], r["column"], r["failure_case"])
        for r in native_report(schema, frame).failure_cases.to_pylist()
    }
    assert cases == {
        ("column_in_schema", "DataFrameSchema", "q"),
        ("column_in_dataframe", "DataFrameSchema", "z"),
    }


def test_checks_of_a_column_that_failed_coercion_fail_as_a_whole():
    checks = [pa.Check.ge(0), pa.Check.isin([1, 2])]
    schema = pa.DataFrameSchema({"n": pa.Column(int, checks, coerce=True)}, name="S")
    polars_schema = pal.DataFrameSchema({"n": pal.Column(pl.Int64, checks, coerce=True)}, name="S")
    values = ["1", "x", "-1", None]
    expected = [
        ("Column", "n", "coerce_dtype('{dtype}')", None, "x", 1),
        ("Column", "n", "dtype('{dtype}')", None, "x", 1),
        ("Column", "n", "not_nullable", None, None, 3),
        (
            "Column",
            "n",
            "greater_than_or_equal_to(0)",
            0,
            "not evaluated: the column failed coercion",
            None,
        ),
        ("Column", "n", "isin([1, 2])", 1, "not evaluated: the column failed coercion", None),
    ]
    for model, frame, dtype in (
        (schema, pd.DataFrame({"n": values}), "int64"),
        (polars_schema, pl.DataFrame({"n": values}), "Int64"),
    ):
        report = native_report(model, frame)
        cases = [tuple(r.values()) for r in report.failure_cases.to_pylist()]
        assert sorted(cases, key=repr) == sorted(
            [(c[0], c[1], c[2].format(dtype=dtype), *c[3:]) for c in expected], key=repr
        )
        # Pandera reports the same unconvertible value and row (and the null, which it counts
        # as not converted; phlo's Arrow columns hold nulls), and fails the same checks as a whole with
        # its backend's error text (polars: coercion once, at the schema level).
        pandera = pandera_rows(model, frame)
        coerce = {(r["failure_case"], r["index"]) for r in pandera if "coerce_dtype" in r["check"]}
        assert {c for c in coerce if not _missing(c[0])} == {("x", 1)}
        assert {c[1] for c in coerce if _missing(c[0])} == {3}
        whole = [(r["check"], r["check_number"]) for r in pandera if r["index"] is None]
        assert ("greater_than_or_equal_to(0)", 0) in whole


def test_tz_aware_timestamps_of_any_unit_and_zone_satisfy_a_tz_aware_column():
    schema = pa.DataFrameSchema(
        {
            "t": pa.Column(
                pd.DatetimeTZDtype(tz="UTC"), pa.Check.ge(pd.Timestamp("2024-01-01", tz="UTC"))
            )
        },
        name="S",
    )
    paris = pd.to_datetime(["2024-01-01 00:30", "2024-01-01 02:00"]).tz_localize("Europe/Paris")
    for times in (paris.as_unit("ns"), paris.tz_convert("UTC").as_unit("us")):
        frame = pd.DataFrame({"t": times})
        pandera = pandera_rows(schema, frame)
        assert [r["check"] for r in pandera if r["index"] is None] == [
            "dtype('datetime64[ns, UTC]')"
        ]
        cases = native_report(schema, frame).failure_cases.to_pylist()
        # Only the value check: 00:30 in Paris is 23:30 UTC the day before.
        assert [(r["check"], r["index"]) for r in cases] == [
            ("greater_than_or_equal_to(2024-01-01 00:00:00+00:00)", 0)
        ]
        assert [(r["check"], r["index"]) for r in pandera if r["index"] is not None] == [
            ("greater_than_or_equal_to(2024-01-01 00:00:00+00:00)", 0)
        ]


def test_polars_comparisons_across_zones_and_number_kinds_compare_values():
    bound = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    schema = pal.DataFrameSchema(
        {
            "t": pal.Column(pl.Datetime("us", "Europe/Paris"), pa.Check.ge(bound)),
            "f": pal.Column(pl.Float64, pa.Check.isin([1, 2])),
        },
        name="S",
    )
    paris = pd.to_datetime(["2024-01-01 00:30", "2024-01-01 02:00"]).tz_localize("Europe/Paris")
    frame = pl.from_pandas(pd.DataFrame({"t": paris.as_unit("us"), "f": [1.0, 3.0]}))
    pandera = pandera_rows(schema, frame)
    # Pandera-polars cannot compare them and fails both checks as a whole.
    assert {(r["column"], r["index"]) for r in pandera} == {("t", None), ("f", None)}
    cases = native_report(schema, frame).failure_cases.to_pylist()
    assert [(r["column"], r["index"]) for r in cases] == [("t", 0), ("f", 1)]


def test_report_duplicates_follows_pandas():
    for keep in ("exclude_first", "exclude_last"):
        schema = pa.DataFrameSchema(
            {"i": pa.Column("Int64", unique=True, report_duplicates=keep), "s": pa.Column(str)},
            name="S",
            unique=["i", "s"],
            report_duplicates=keep,
        )
        frame = pd.DataFrame(
            {
                "i": pd.array([1, 2, 1, 1, None, None], dtype="Int64"),
                "s": ["a", "b", "a", "c", "d", "d"],
            }
        )
        assert_same_as_pandera(schema, frame)
