"""phlo.validate against Pandera itself: the same failures (column, check, row) on the same
data for the seed's contract; plus coercion, strictness, custom checks run by Pandera, error
records, and polars / pyarrow-typed models. Value-for-value differential tests (generated
schemas, property-based, large frames) are in test_validation_differential.py."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pandera.pandas as pa
import pandera.polars as pal
import polars as pl
import pyarrow
import pytest
from pandera.typing import Series

import phlo
from phlo import errors


class EventSchema(pa.DataFrameModel):
    """The seed's event contract."""

    id: Series[str] = pa.Field(description="Unique event ID", nullable=False, unique=True)
    timestamp: Series[pd.DatetimeTZDtype(tz="UTC")] = pa.Field(nullable=False)  # type: ignore[valid-type]
    value: Series[float] = pa.Field(ge=0, le=100)
    category: Series[str] = pa.Field(isin=["A", "B", "C"], nullable=True)

    class Config:
        strict = True
        coerce = True


def pandera_failures(schema, frame) -> set[tuple[str, str, int | None]]:
    try:
        schema.validate(frame, lazy=True)
    except (pa.errors.SchemaErrors, pal.errors.SchemaErrors) as exc:
        cases = exc.failure_cases
        rows = cases.to_dicts() if hasattr(cases, "to_dicts") else cases.to_dict("records")
        return {(r["column"], r["check"], _index(r["index"])) for r in rows}
    return set()


def phlo_failures(schema, data) -> set[tuple[str, str, int | None]]:
    try:
        phlo.validate(data, schema)
    except errors.ValidationError as exc:
        return {(r["column"], r["check"], r["index"]) for r in exc.failure_cases.to_pylist()}
    return set()


def _index(value) -> int | None:
    return None if value is None or value != value else int(value)


def events(n: int) -> pd.DataFrame:
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return pd.DataFrame(
        {
            "id": [f"e{i}" for i in range(n)],
            "timestamp": pd.to_datetime([base + dt.timedelta(minutes=i) for i in range(n)]),
            "value": [float(i % 100) for i in range(n)],
            "category": [("A", "B", "C", None)[i % 4] for i in range(n)],
        }
    )


def test_valid_data_passes_from_every_arrow_source():
    frame = events(50)
    for data in (frame, pyarrow.Table.from_pandas(frame), pl.from_pandas(frame)):
        table = phlo.validate(data, EventSchema)
        assert isinstance(table, pyarrow.Table) and table.num_rows == 50
        assert table.column("value").to_pylist() == frame["value"].tolist()
    EventSchema.validate(frame)  # Pandera agrees


def test_the_seed_contract_reports_what_pandera_reports():
    frame = events(8)
    frame.loc[1, "id"] = "e0"  # duplicate
    frame.loc[2, "id"] = None  # null in a non-nullable column
    frame.loc[3, "value"] = -5.0  # below ge=0
    frame.loc[4, "value"] = 250.0  # above le=100
    frame.loc[5, "category"] = "Z"  # not in isin
    frame["extra"] = 1  # strict
    expected = pandera_failures(EventSchema, frame)
    assert len(expected) == 7
    assert phlo_failures(EventSchema, frame) == expected


def test_custom_and_dataframe_checks_run_in_pandera_with_their_numbers():
    class Custom(pa.DataFrameModel):
        n: Series[int] = pa.Field(ge=0, le=10)

        @pa.check("n")
        def even(cls, s):
            return s % 2 == 0

        @pa.dataframe_check
        def small_sum(cls, df):
            return df["n"] < 9

    frame = pd.DataFrame({"n": [0, 3, 12, 10]})
    validator = phlo.Validator(Custom)
    assert validator.native_checks == [
        "n: greater_than_or_equal_to(0)",
        "n: less_than_or_equal_to(10)",
    ]
    assert validator.pandera_checks == ["n: even", "<dataframe>: small_sum"]
    report = validator.report(frame)
    assert not report.valid
    cases = {
        (r["column"], r["check"], r["check_number"], r["index"])
        for r in report.failure_cases.to_pylist()
    }
    assert ("n", "even", 2, 1) in cases
    assert ("n", "less_than_or_equal_to(10)", 1, 2) in cases
    assert phlo_failures(Custom, frame) == pandera_failures(Custom, frame)


def test_checks_rust_cannot_compile_fall_back_to_pandera():
    # Look-behind is valid in Python's re, not in Rust's regex: Pandera runs it.
    schema = pa.DataFrameSchema(
        {"s": pa.Column(str, [pa.Check.str_matches(r"(?<=a)b|a"), pa.Check.str_length(1, 2)])},
        name="S",
    )
    frame = pd.DataFrame({"s": ["a", "xb", "abc"]})
    report = phlo.Validator(schema).report(frame)
    assert report.pandera_checks == ["s: str_matches('(?<=a)b|a')"]
    assert report.native_checks == ["s: str_length(1, 2)"]
    assert phlo_failures(schema, frame) == pandera_failures(schema, frame) != set()


def test_coercion_strict_filter_and_missing_columns():
    class Typed(pa.DataFrameModel):
        n: Series[int] = pa.Field(ge=0)
        label: Series[str] = pa.Field(nullable=True)
        needed: Series[float] = pa.Field(nullable=True)

        class Config:
            coerce = True
            strict = "filter"

    frame = pd.DataFrame({"n": ["1", "2", "x"], "label": ["a", None, "c"], "junk": [1, 2, 3]})
    expected = pandera_failures(Typed, frame)
    assert ("Typed", "column_in_dataframe", None) in expected
    assert phlo_failures(Typed, frame) == expected
    good = pd.DataFrame(
        {"n": ["1", "2"], "label": ["a", None], "needed": [1.0, 2.0], "junk": [0, 0]}
    )
    table = phlo.validate(good, Typed)
    assert table.column_names == ["n", "label", "needed"]  # junk filtered
    assert table.schema.field("n").type == pyarrow.int64()  # coerced from strings
    assert table.column("n").to_pylist() == [1, 2]


def test_errors_are_structured_with_codes_counts_and_samples():
    frame = events(40)
    frame["value"] = -1.0
    frame.loc[0, "id"] = None
    with pytest.raises(errors.ValidationError) as info:
        phlo.validate(frame, EventSchema)
    err = info.value
    records = {r["code"]: r for r in err.errors()}
    assert records["check_failed"]["count"] == 40
    assert len(records["check_failed"]["sample"]) == 20
    assert records["check_failed"]["column"] == "value"
    assert records["null_values"]["sample"] == [{"index": 0, "failure_case": None}]
    assert "value: greater_than_or_equal_to(0) failed 40x" in str(err)
    assert err.failure_cases.num_rows == 41
    assert err.failure_cases.column_names == [
        "schema_context",
        "column",
        "check",
        "check_number",
        "failure_case",
        "index",
    ]
    # A cap keeps counts exact; lazy=False reports the first failed check only.
    with pytest.raises(errors.ValidationError) as capped:
        phlo.validate(frame, EventSchema, max_failure_cases=5)
    assert {r["count"] for r in capped.value.errors()} == {40, 1}
    assert capped.value.failure_cases.num_rows == 6
    with pytest.raises(errors.ValidationError) as eager:
        phlo.validate(frame, EventSchema, lazy=False)
    assert len(eager.value.errors()) == 1


def test_polars_and_pyarrow_typed_models():
    class PolarsEvents(pal.DataFrameModel):
        id: str = pal.Field(unique=True)
        value: float = pal.Field(in_range={"min_value": 0, "max_value": 10})
        when: pl.Datetime(time_zone="UTC") = pal.Field(nullable=True)  # type: ignore[valid-type]

    frame = pl.DataFrame(
        {
            "id": ["a", "b", "a", "c"],
            "value": [1.0, 11.0, 2.0, None],
            "when": [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)] * 4,
        }
    )
    expected = pandera_failures(PolarsEvents, frame)
    assert {c for _, c, _ in expected} == {"field_uniqueness", "in_range(0, 10)", "not_nullable"}
    assert phlo_failures(PolarsEvents, frame) == expected

    class ArrowTyped(pa.DataFrameModel):
        n: Series[pd.ArrowDtype(pyarrow.int32())] = pa.Field(isin=[1, 2, 3])  # type: ignore[valid-type]

    table = pyarrow.table({"n": pyarrow.array([1, 2, 5], pyarrow.int32())})
    assert phlo_failures(ArrowTyped, table) == {("n", "isin([1, 2, 3])", 2)}


def test_a_non_pandera_schema_is_a_clear_error():
    with pytest.raises(errors.SchemaError, match="not a Pandera schema"):
        phlo.validate(events(2), {"id": str})


def test_cli_validates_a_file_against_a_schema(tmp_path):
    from click.testing import CliRunner

    from phlo.cli import main as cli

    schema_file = tmp_path / "schemas.py"
    schema_file.write_text(
        "import pandera.pandas as pa\n"
        "from pandera.typing import Series\n"
        "class Readings(pa.DataFrameModel):\n"
        "    id: Series[int] = pa.Field(unique=True)\n"
        "    value: Series[float] = pa.Field(ge=0)\n"
    )
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text("id,value\n1,0.5\n2,3.0\n")
    bad.write_text("id,value\n1,0.5\n1,-3.0\n")
    runner = CliRunner()
    spec = f"{schema_file}:Readings"
    out = runner.invoke(cli, ["validate", str(good), "--schema", spec])
    assert out.exit_code == 0 and "valid: 2 rows" in out.output, out.output
    out = runner.invoke(cli, ["validate", str(bad), "--schema", spec])
    assert out.exit_code == 1
    assert "FAIL [duplicate_values] id: field_uniqueness x2" in out.output
    assert "FAIL [check_failed] value: greater_than_or_equal_to(0) x1  row 1: '-3.0'" in out.output
    out = runner.invoke(cli, ["validate", str(good), "--schema", "nomodule"])
    assert out.exit_code != 0 and "module:Name" in out.output


def test_categorical_columns_are_checked_in_the_engine():
    schema = pa.DataFrameSchema(
        {
            "c": pa.Column(
                str,
                [pa.Check.isin(["a", "b"]), pa.Check.str_startswith("a"), pa.Check.ne("zz")],
                unique=True,
                nullable=True,
                coerce=True,
            )
        },
        name="S",
    )
    frame = pd.DataFrame({"c": pd.Categorical(["a", "b", "z", "a", None])})
    report = phlo.Validator(schema).report(frame)
    assert report.pandera_checks == []  # dictionary-encoded strings stay native
    assert phlo_failures(schema, frame) == pandera_failures(schema, frame) != set()
    empty = pyarrow.table({"c": pyarrow.array([None, None], pyarrow.string()).dictionary_encode()})
    assert phlo.validate(empty, schema).num_rows == 2
