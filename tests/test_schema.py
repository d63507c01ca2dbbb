"""Schemas as contracts: Pandera → Iceberg types, tables created from Pandera models, dbt YAML →
Pandera, validation on write, and the schema evolution policy."""

from __future__ import annotations

import datetime as dt
import decimal
import textwrap

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pandera.polars as pal
import polars as pl
import pyarrow
import pytest
from pandera.engines import pandas_engine
from pandera.typing import Series
from pyiceberg.catalog.sql import SqlCatalog

import phlo
from phlo import errors
from phlo.dbt.dbt_schema import dbt_model_to_pandera


class Everything(pa.DataFrameModel):
    s: Series[str] = pa.Field(description="a string")
    i: Series[int]
    i32: Series[np.int32]
    f: Series[float] = pa.Field(nullable=True)
    f32: Series[np.float32]
    b: Series[bool]
    naive: Series[dt.datetime]
    aware: Series[pd.DatetimeTZDtype(tz="UTC")]  # type: ignore[valid-type]
    d: Series[pandas_engine.Date]
    money: Series[pandas_engine.Decimal(10, 2)]  # type: ignore[valid-type]
    t: Series[pd.ArrowDtype(pyarrow.time64("us"))]  # type: ignore[valid-type]
    raw: Series[pd.ArrowDtype(pyarrow.binary())]  # type: ignore[valid-type]
    tags: Series[pd.ArrowDtype(pyarrow.list_(pyarrow.string()))]  # type: ignore[valid-type]


def test_pandera_types_map_to_iceberg_types():
    schema = phlo.pandera_to_iceberg(Everything)
    types = {f.name: f.type for f in schema}
    assert types == {
        "s": pyarrow.string(),
        "i": pyarrow.int64(),
        "i32": pyarrow.int32(),
        "f": pyarrow.float64(),
        "f32": pyarrow.float32(),
        "b": pyarrow.bool_(),
        "naive": pyarrow.timestamp("us"),
        "aware": pyarrow.timestamp("us", tz="+00:00"),
        "d": pyarrow.date32(),
        "money": pyarrow.decimal128(10, 2),
        "t": pyarrow.time64("us"),
        "raw": pyarrow.large_binary(),
        "tags": types["tags"],
    }
    assert pyarrow.types.is_list(types["tags"]) or pyarrow.types.is_large_list(types["tags"])
    assert not schema.field("i").nullable and schema.field("f").nullable
    assert schema.field("s").metadata[b"doc"] == b"a string"
    ids = [int(f.metadata[b"PARQUET:field_id"]) for f in schema]
    assert ids[:13] == list(range(1, 14))
    with_meta = phlo.pandera_to_iceberg(Everything, metadata_columns=True)
    assert with_meta.field("_phlo_row_id").metadata[b"PARQUET:field_id"] == b"10001"


def test_polars_models_map_too():
    class Polars(pal.DataFrameModel):
        s: str
        when: pl.Datetime(time_zone="UTC")  # type: ignore[valid-type]
        day: dt.date
        at: dt.time
        price: pl.Decimal(12, 3)  # type: ignore[valid-type]
        items: pl.List(pl.Int64)  # type: ignore[valid-type]

    types = {f.name: f.type for f in phlo.pandera_to_iceberg(Polars)}
    assert types["s"] == pyarrow.string()
    assert types["when"] == pyarrow.timestamp("us", tz="+00:00")
    assert types["day"] == pyarrow.date32() and types["at"] == pyarrow.time64("us")
    assert types["price"] == pyarrow.decimal128(12, 3)


def test_unsupported_types_name_the_field():
    class Bad(pa.DataFrameModel):
        ok: Series[int]
        blob: Series[object]

    with pytest.raises(errors.SchemaError, match="'blob'"):
        phlo.pandera_to_iceberg(Bad)
    untyped = pa.DataFrameSchema({"x": pa.Column()})
    with pytest.raises(errors.SchemaError, match="declares no type"):
        phlo.pandera_to_iceberg(untyped)


class Payment(pa.DataFrameModel):
    id: Series[str] = pa.Field(unique=True)
    amount: Series[pandas_engine.Decimal(10, 2)] = pa.Field(nullable=True)  # type: ignore[valid-type]
    paid_at: Series[pd.DatetimeTZDtype(tz="UTC")]  # type: ignore[valid-type]


def test_a_table_from_a_pandera_model_round_trips_decimals(lh):
    table = lh.create_table("raw.payments", Payment)
    amounts = [decimal.Decimal("12.34"), None, decimal.Decimal("99999999.99")]
    data = pyarrow.table(
        {
            "id": ["a", "b", "c"],
            "amount": pyarrow.array(amounts, pyarrow.decimal128(10, 2)),
            "paid_at": pyarrow.array(
                [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)] * 3, pyarrow.timestamp("us", tz="UTC")
            ),
        }
    )
    table.append(data, validate=Payment)
    back = table.to_arrow()
    assert back.schema.field("amount").type == pyarrow.decimal128(10, 2)
    assert back.column("amount").to_pylist() == amounts
    pyi = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table("raw.payments")
    assert str(pyi.schema().find_field("amount").field_type) == "decimal(10, 2)"
    assert pyi.schema().find_field("paid_at").required


def test_validation_on_write_refuses_bad_batches_and_writes_nothing(lh):
    table = lh.create_table("raw.payments", Payment)
    bad = pd.DataFrame(
        {
            "id": ["a", "a"],
            "amount": [decimal.Decimal("1.00"), decimal.Decimal("2.00")],
            "paid_at": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True),
        }
    )
    with pytest.raises(errors.ValidationError, match="field_uniqueness"):
        table.append(bad, validate=Payment)
    with pytest.raises(errors.ValidationError):
        table.merge(bad, "id", validate=Payment, merge_config={"deduplication_method": "last"})
    assert table.history() == []


def test_schema_evolution_adds_columns_and_promotes_types(lh):
    table = lh.create_table(
        "raw.evolving", pyarrow.schema([("id", pyarrow.int32()), ("score", pyarrow.float32())])
    )
    table.append(pyarrow.table({"id": pyarrow.array([1], pyarrow.int32()), "score": [0.5]}))
    wider = pyarrow.table({"id": pyarrow.array([2**40]), "score": [1.25], "note": ["new"]})
    with pytest.raises(errors.SchemaError, match="note"):
        table.append(wider)  # strict (the default) never changes the schema
    assert len(table.history()) == 1 and table.schema.names == ["id", "score"]

    table.append(wider, schema_evolution="evolve")
    schema = table.schema
    assert schema.names == ["id", "score", "note"]
    assert schema.field("id").type == pyarrow.int64()
    assert schema.field("score").type == pyarrow.float64()
    assert schema.field("note").nullable
    rows = sorted(table.to_arrow().to_pylist(), key=lambda r: r["id"])
    assert rows == [
        {"id": 1, "score": 0.5, "note": None},
        {"id": 2**40, "score": 1.25, "note": "new"},
    ]
    pyi = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table("raw.evolving")
    assert pyi.scan().to_arrow().num_rows == 2
    assert lh.log("main", limit=3)[1].message == "evolve schema of raw.evolving: +[note]"
    # Merges evolve the same way.
    table.merge(
        pyarrow.table({"id": [1], "score": [9.0], "note": ["x"], "more": [True]}),
        "id",
        schema_evolution="evolve",
    )
    assert table.schema.names[-1] == "more"


def test_unsafe_changes_are_schema_errors_before_any_write(lh):
    table = lh.create_table("raw.typed", pyarrow.schema([("n", pyarrow.int64())]))
    table.append(pyarrow.table({"n": [1]}))
    snapshots = len(table.history())
    for mode in ("strict", "evolve"):
        with pytest.raises(errors.SchemaError, match="column n"):
            table.append(pyarrow.table({"n": ["1"]}), schema_evolution=mode)
        with pytest.raises(errors.SchemaError, match="column n"):
            table.append(pyarrow.table({"n": [1.5]}), schema_evolution=mode)
    # Evolving refuses the whole batch, new column included, when one column cannot convert.
    with pytest.raises(errors.SchemaError, match="column n"):
        table.append(pyarrow.table({"n": ["1"], "extra": [1]}), schema_evolution="evolve")
    assert len(table.history()) == snapshots and table.schema.names == ["n"]
    with pytest.raises(errors.InputError, match="schema_evolution"):
        table.append(pyarrow.table({"n": [1]}), schema_evolution="sometimes")  # type: ignore[arg-type]


DBT_YAML = """
version: 2
models:
  - name: fct_glucose_readings
    description: Glucose readings, one per reading.
    config:
      contract: {enforced: true}
    columns:
      - name: reading_id
        data_type: varchar
        description: Unique reading id
        data_tests: [not_null, unique]
      - name: glucose_mg_dl
        data_type: integer
        data_tests:
          - not_null
          - dbt_utils.accepted_range: {min_value: 20, max_value: 600}
      - name: trend
        data_type: varchar
        data_tests:
          - accepted_values:
              arguments: {values: [rising, flat, falling]}
      - name: ratio
        data_type: decimal(6, 3)
        tests:
          - dbt_expectations.expect_column_values_to_be_between:
              min_value: 0
              max_value: 1
              strictly: true
      - name: reading_at
        data_type: timestamptz
      - name: reading_date
  - name: other
"""


def test_dbt_yaml_becomes_a_pandera_model(tmp_path, lh):
    path = tmp_path / "fct_glucose_readings.yml"
    path.write_text(textwrap.dedent(DBT_YAML))
    model = dbt_model_to_pandera(path, "fct_glucose_readings")
    assert model.__name__ == "FctGlucoseReadings" and phlo.dbt_model_to_pandera is not None
    schema = model.to_schema()
    assert not schema.columns["reading_id"].nullable and schema.columns["reading_id"].unique
    assert schema.strict is True and schema.coerce is True
    iceberg = {f.name: f.type for f in phlo.pandera_to_iceberg(model)}
    assert iceberg == {
        "reading_id": pyarrow.string(),
        "glucose_mg_dl": pyarrow.int32(),
        "trend": pyarrow.string(),
        "ratio": pyarrow.decimal128(6, 3),
        "reading_at": pyarrow.timestamp("us", tz="+00:00"),
        "reading_date": pyarrow.date32(),  # inferred from the name
    }
    good = pd.DataFrame(
        {
            "reading_id": ["r1", "r2"],
            "glucose_mg_dl": [90, 120],
            "trend": ["flat", None],
            "ratio": [decimal.Decimal("0.5"), None],
            "reading_at": pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True),
            "reading_date": [dt.date(2024, 1, 1), dt.date(2024, 1, 2)],
        }
    )
    validated = phlo.validate(good, model)
    assert validated.schema.field("glucose_mg_dl").type == pyarrow.int32()  # coerced
    bad = good.assign(
        glucose_mg_dl=[10, 700], trend=["up", "flat"], ratio=[decimal.Decimal("1"), None]
    )
    with pytest.raises(errors.ValidationError) as info:
        phlo.validate(bad, model)
    failed = {(r["column"], r["check"]) for r in info.value.errors()}
    assert failed == {
        ("glucose_mg_dl", "greater_than_or_equal_to(20)"),
        ("glucose_mg_dl", "less_than_or_equal_to(600)"),
        ("trend", "isin(['rising', 'flat', 'falling'])"),
        ("ratio", "less_than(1)"),
    }
    table = lh.create_table("raw.glucose", model)
    table.append(good, validate=model)
    assert table.to_arrow().num_rows == 2


def test_bad_dbt_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "m.yml"
    path.write_text(textwrap.dedent(DBT_YAML))
    with pytest.raises(errors.ConfigError, match="no model 'missing'"):
        dbt_model_to_pandera(path, "missing")
    with pytest.raises(errors.ConfigError, match="cannot read"):
        dbt_model_to_pandera(tmp_path / "absent.yml", "x")
    path.write_text(
        "models:\n  - name: m\n    columns:\n      - name: x\n        data_type: geometry\n"
    )
    with pytest.raises(errors.SchemaError, match="geometry"):
        dbt_model_to_pandera(path, "m")
