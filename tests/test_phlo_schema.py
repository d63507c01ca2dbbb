"""`phlo.PhloSchema`: contracts written the original framework's way (plain annotations) mean
what they say — ``T | None`` is nullable, ``datetime`` is a UTC timestamp (timestamptz), and
``_id`` is a column — through validation, table creation, a dlt ingestion and `SchemaCheck`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from pandera.pandas import Field
from pandera.typing import Series

import phlo
from http_source import EventApi
from phlo import PhloSchema, SchemaCheck, errors, phlo_quality

_BASE = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


class RawGlucoseEntries(PhloSchema):
    """Glucose readings as a Nightscout-like API serves them."""

    _id: str = Field(unique=True)
    sgv: int = Field(ge=1)
    date_string: dt.datetime
    direction: str | None


def entry(i: int, *, bad: bool = False) -> dict[str, Any]:
    """The `i`-th reading: a null direction every 4th, ``sgv`` 0 when `bad`."""
    return {
        "_id": f"e{i:05d}",
        "sgv": 0 if bad else 90 + i % 50,
        "dateString": (_BASE + dt.timedelta(minutes=5 * i)).isoformat().replace("+00:00", "Z"),
        "direction": None if i % 4 == 0 else "Flat",
        "type": "sgv",
    }


class GlucoseApi(EventApi):
    """`EventApi`'s server, paging readings instead of events; `direction=None` serves no
    direction at all (a null on every row)."""

    def __init__(self, rows: int, *, duplicate_ids: bool = False, **kwargs: Any) -> None:
        super().__init__(rows, page_size=7, **kwargs)
        self.duplicate_ids = duplicate_ids
        self.all_null_direction = False

    def reading(self, i: int) -> dict[str, Any]:
        row = entry(i, bad=self.is_bad(i))
        if self.duplicate_ids:
            row["_id"] = f"e{i // 2:05d}"
        if self.all_null_direction:
            row["direction"] = None
        return row

    def page(self, number: int) -> dict[str, Any]:
        start = (number - 1) * self.page_size
        rows = [self.reading(i) for i in range(start, min(start + self.page_size, self.rows))]
        return {"data": rows, "page": number, "total_pages": self.total_pages}


def entries_ingestion(api: GlucoseApi) -> phlo.IngestionDefinition:
    from dlt.sources.rest_api import rest_api_source

    @phlo.phlo_ingestion(
        table_name="glucose_entries",
        unique_key="_id",
        group="nightscout",
        validation_schema=RawGlucoseEntries,
        retry_delay_seconds=0,
    )
    def glucose_entries(partition_date: str) -> Any:
        paginator = {"type": "page_number", "base_page": 1, "total_path": "total_pages"}
        return rest_api_source(
            {
                "client": {"base_url": api.base_url, "paginator": paginator},
                "resources": [
                    {
                        "name": "glucose_entries",
                        "endpoint": {"path": "events", "data_selector": "data"},
                    }
                ],
            }
        )

    return glucose_entries


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # dlt and the project lookup see an empty folder


# --- T | None ---------------------------------------------------------------------------


def test_an_optional_annotation_is_a_nullable_column_that_may_be_absent() -> None:
    column = RawGlucoseEntries.to_schema().columns["direction"]
    assert (column.nullable, column.required) == (True, False)
    assert phlo.pandera_to_iceberg(RawGlucoseEntries).field("direction").nullable

    data = pa.table(
        {
            "_id": ["a", "b", "c"],
            "sgv": [100, 110, 120],
            "date_string": ["2024-01-01T00:00:00Z"] * 3,
            "direction": ["Flat", None, None],
        }
    )
    assert phlo.validate(data, RawGlucoseEntries)["direction"].to_pylist() == ["Flat", None, None]
    without = phlo.validate(data.drop_columns(["direction"]), RawGlucoseEntries)
    assert "direction" not in without.column_names and without.num_rows == 3


def test_an_explicit_nullable_wins_over_the_annotation() -> None:
    class Strict(PhloSchema):
        direction: str | None = Field(nullable=False)

    assert Strict.to_schema().columns["direction"].nullable is False
    with pytest.raises(errors.ValidationError, match="direction"):
        phlo.validate(pa.table({"direction": ["Flat", None]}), Strict)


def test_a_non_optional_column_still_refuses_nulls() -> None:
    data = pa.table(
        {"_id": ["a"], "sgv": [None], "date_string": ["2024-01-01T00:00:00Z"]},
        schema=pa.schema([("_id", pa.string()), ("sgv", pa.int64()), ("date_string", pa.string())]),
    )
    with pytest.raises(errors.ValidationError) as caught:
        phlo.validate(data, RawGlucoseEntries)
    assert [(e["column"], e["code"]) for e in caught.value.errors()] == [("sgv", "null_values")]


# --- datetime ---------------------------------------------------------------------------


def test_datetime_is_a_utc_timestamp_in_iceberg() -> None:
    field = phlo.pandera_to_iceberg(RawGlucoseEntries).field("date_string")
    assert pa.types.is_timestamp(field.type) and field.type.unit == "us"
    assert field.type.tz in ("UTC", "+00:00") and not field.nullable

    class Optional(PhloSchema):
        seen_at: dt.datetime | None
        created: Series[dt.datetime]
        naive: Series[np.datetime64]

    schema = phlo.pandera_to_iceberg(Optional)
    assert schema.field("seen_at").type.tz is not None and schema.field("seen_at").nullable
    assert schema.field("created").type.tz is not None
    assert schema.field("naive").type == pa.timestamp("us")  # the way to ask for naive


def test_utc_data_validates_and_appends_to_the_table_made_from_the_contract(
    lh: phlo.Lakehouse,
) -> None:
    table = lh.create_table("raw.glucose", RawGlucoseEntries)
    instants = [_BASE + dt.timedelta(minutes=5 * i) for i in range(3)]
    # What dlt delivers (tz-aware UTC) and what a JSON API sends (ISO strings with Z).
    as_timestamps = pa.array(instants, pa.timestamp("us", tz="UTC"))
    as_strings = pa.array([t.isoformat().replace("+00:00", "Z") for t in instants])
    for i, column in enumerate((as_timestamps, as_strings)):
        batch = pa.table(
            {
                "_id": [f"{i}-{n}" for n in range(3)],
                "sgv": [100, 101, 102],
                "date_string": column,
                "direction": ["Flat"] * 3,
            }
        )
        table.append(batch, validate=RawGlucoseEntries)
    rows = table.to_arrow().sort_by("_id")
    assert rows["date_string"].type.tz is not None
    assert rows["date_string"].to_pylist() == instants + instants


# --- _id --------------------------------------------------------------------------------


def test_an_underscore_column_is_kept_with_its_checks() -> None:
    schema = RawGlucoseEntries.to_schema()
    assert list(schema.columns) == ["_id", "sgv", "date_string", "direction"]
    assert schema.columns["_id"].unique and not schema.columns["_id"].nullable
    assert phlo.pandera_to_iceberg(RawGlucoseEntries).field("_id").type == pa.string()

    data = pa.table(
        {"_id": ["a", "a", "b"], "sgv": [1, 2, 3], "date_string": ["2024-01-01T00:00:00Z"] * 3}
    )
    with pytest.raises(errors.ValidationError) as caught:
        phlo.validate(data, RawGlucoseEntries)
    assert [(e["column"], e["code"], e["count"]) for e in caught.value.errors()] == [
        ("_id", "duplicate_values", 2)
    ]
    with pytest.raises(errors.ValidationError, match="_id"):
        phlo.validate(data.drop_columns(["_id"]), RawGlucoseEntries)


def test_a_double_underscore_column_keeps_its_name() -> None:
    class Mangled(PhloSchema):
        __key: str  # Python stores it as _Mangled__key

    assert list(Mangled.to_schema().columns) == ["__key"]


def test_an_underscore_name_that_cannot_be_a_column_fails_at_class_definition() -> None:
    with pytest.raises(errors.SchemaError, match=r"_limit can only be assigned a Field"):

        class Constant(PhloSchema):
            _limit: int = 3

    with pytest.raises(errors.SchemaError, match=r"_phlo_run_id.*metadata"):

        class Metadata(PhloSchema):
            _phlo_run_id: str

    with pytest.raises(errors.SchemaError, match=r"NoSuchType.*import"):

        class Unresolved(PhloSchema):
            _id: NoSuchType  # type: ignore[name-defined]  # noqa: F821


def test_a_subclass_adds_columns_and_keeps_the_parent_ones() -> None:
    class WithDevice(RawGlucoseEntries):
        _device: str | None

    columns = WithDevice.to_schema().columns
    assert list(columns) == ["_id", "sgv", "date_string", "direction", "_device"]
    assert columns["_device"].nullable and columns["_id"].unique


# --- the whole path: dlt ingestion, table creation, SchemaCheck -----------------------------


def test_a_dlt_ingestion_with_the_contract_writes_what_the_api_served(lh: phlo.Lakehouse) -> None:
    with GlucoseApi(30) as api:
        ingestion = entries_ingestion(api)
        first = ingestion.run("2024-01-01", lakehouse=lh)
        again = ingestion.run("2024-01-01", lakehouse=lh)

    assert (first.status, first.rows_inserted) == ("published", 30)
    # `_id` is the merge key: the re-run updates every row and adds none.
    assert (again.rows_inserted, again.rows_updated) == (0, 30)
    table = lh.table("raw.glucose_entries")
    schema = table.schema
    assert schema.field("date_string").type.tz is not None
    assert schema.field("direction").nullable and not schema.field("_id").nullable
    rows = table.to_arrow().sort_by("_id").select(["_id", "sgv", "date_string", "direction"])
    expected = []
    for i in range(30):
        served = entry(i)
        expected.append(
            {
                "_id": served["_id"],
                "sgv": served["sgv"],
                "date_string": _BASE + dt.timedelta(minutes=5 * i),
                "direction": served["direction"],
            }
        )
    assert rows.to_pylist() == expected


def test_a_run_whose_direction_is_always_null_is_published(lh: phlo.Lakehouse) -> None:
    with GlucoseApi(10) as api:
        api.all_null_direction = True  # dlt then leaves the column out
        result = entries_ingestion(api).run("2024-01-01", lakehouse=lh)
    assert result.status == "published" and result.rows_inserted == 10
    assert lh.table("raw.glucose_entries").to_arrow()["direction"].null_count == 10


def test_duplicate_ids_fail_the_contract_and_nothing_is_written(lh: phlo.Lakehouse) -> None:
    with GlucoseApi(10, duplicate_ids=True) as api, pytest.raises(errors.ValidationError) as caught:
        entries_ingestion(api).run("2024-01-01", lakehouse=lh)
    result = caught.value.result  # type: ignore[attr-defined]
    assert result.status == "failed_contract"
    assert "_id: field_uniqueness failed 10x" in result.contract.message
    assert lh.table("raw.glucose_entries").to_arrow().num_rows == 0


def test_schema_check_on_the_ingested_table(lh: phlo.Lakehouse) -> None:
    @phlo_quality(table="raw.glucose_entries", checks=[SchemaCheck(RawGlucoseEntries)])
    def glucose_quality() -> None:
        """The contract, again, on the published table."""

    with GlucoseApi(12) as api:
        entries_ingestion(api).run("2024-01-01", lakehouse=lh)
    (clean,) = glucose_quality.run("2024-01-01", lakehouse=lh)
    assert clean.passed and clean.total_count == 12  # nulls in direction are fine

    table = lh.table("raw.glucose_entries")
    twin = table.to_arrow().filter(pa.compute.equal(table.to_arrow()["_id"], "e00003"))
    table.append(twin)  # a second row with the same _id, bypassing the contract
    (dirty,) = glucose_quality.run("2024-01-01", lakehouse=lh)
    assert not dirty.passed and dirty.failed_count == 2
    assert {(s["column"], s["check"]) for s in dirty.sample} == {("_id", "field_uniqueness")}


# --- the original's dbt_model_to_pandera signature ------------------------------------------


def test_dbt_model_to_pandera_takes_the_original_class_name(tmp_path: Path) -> None:
    models = tmp_path / "models.yml"
    models.write_text(
        "models:\n  - name: fct_readings\n    columns:\n      - name: reading_id\n"
        "        data_tests: [not_null]\n"
    )
    assert phlo.dbt_model_to_pandera(models, "fct_readings").__name__ == "FctReadings"
    named = phlo.dbt_model_to_pandera(models, "fct_readings", class_name="Readings")
    assert named.__name__ == "Readings" and list(named.to_schema().columns) == ["reading_id"]
    with pytest.raises(errors.ConfigError, match="class_name"):
        phlo.dbt_model_to_pandera(models, "fct_readings", class_name="not a name")
