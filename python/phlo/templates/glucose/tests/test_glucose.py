"""The project's pipeline on a throwaway lakehouse: run `pytest` from the project folder."""

import json
from pathlib import Path

import pytest
from workflows.ingestion.nightscout.glucose import glucose_entries
from workflows.quality.nightscout import glucose_quality

import phlo
from phlo.errors import ValidationError

READINGS = Path(__file__).parents[1] / "data" / "entries.jsonl"


def readings_of(day: str) -> list[dict]:
    with READINGS.open() as lines:
        rows = [json.loads(line) for line in lines]
    return [r for r in rows if r["dateString"].startswith(day)]


@pytest.fixture
def lakehouse(tmp_path):
    return phlo.Lakehouse.open(tmp_path / "lakehouse")


def test_a_day_of_readings_is_ingested_and_published(lakehouse):
    result = glucose_entries.run("2025-01-01", lakehouse=lakehouse)
    assert result.status == "published"
    table = lakehouse.table("raw.glucose_entries").to_arrow()
    expected = {r["_id"]: r["sgv"] for r in readings_of("2025-01-01")}
    assert dict(zip(table["_id"].to_pylist(), table["sgv"].to_pylist(), strict=True)) == expected
    date_string = table.schema.field("date_string").type  # a `datetime` field: timestamptz
    assert date_string.unit == "us" and date_string.tz is not None


def test_sensor_errors_refuse_the_day_and_write_nothing(lakehouse):
    with pytest.raises(ValidationError) as refused:
        glucose_entries.run("2025-01-03", lakehouse=lakehouse)
    contract = refused.value.result.contract
    bad = [r for r in readings_of("2025-01-03") if r["sgv"] < 20]
    assert contract.failed_count == len(bad) == 4
    assert "sgv" in contract.summary()
    assert lakehouse.table("raw.glucose_entries").to_arrow().num_rows == 0


def test_quality_checks_pass_but_old_data_is_not_fresh(lakehouse):
    glucose_entries.run("2025-01-02", lakehouse=lakehouse)
    results = {r.name: r for r in glucose_quality.run("2025-01-02", lakehouse=lakehouse)}
    failing = sorted(name for name, r in results.items() if not r.passed)
    assert failing == ["freshness_check_date_string"]  # the sample is from 2025: a warning
    assert results["freshness_check_date_string"].severity == "warn"
