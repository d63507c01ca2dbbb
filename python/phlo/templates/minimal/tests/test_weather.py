"""The project's pipeline on a throwaway lakehouse: run `pytest` from the project folder."""

import pytest
from workflows.ingestion.weather.readings import weather_readings
from workflows.ingestion.weather.source import readings_of, stations
from workflows.quality.weather import readings_quality
from workflows.schemas.weather import ReadingSchema

import phlo
from phlo.errors import ValidationError

DAY = "2025-01-02"


@pytest.fixture
def lakehouse(tmp_path):
    return phlo.Lakehouse.open(tmp_path / "lakehouse")


def test_a_day_is_ingested_and_published(lakehouse):
    result = weather_readings.run(DAY, lakehouse=lakehouse)
    assert result.status == "published"
    table = lakehouse.table("raw.readings").to_arrow()
    assert table.num_rows == 24 * len(stations())
    expected = sorted(row["reading_id"] for row in readings_of(DAY))
    assert sorted(table["reading_id"].to_pylist()) == expected


def test_running_a_day_again_updates_it_in_place(lakehouse):
    weather_readings.run(DAY, lakehouse=lakehouse)
    again = weather_readings.run(DAY, lakehouse=lakehouse)
    assert again.rows_inserted == 0
    assert lakehouse.table("raw.readings").to_arrow().num_rows == 24 * len(stations())


def test_quality_checks_pass_on_the_day(lakehouse):
    weather_readings.run(DAY, lakehouse=lakehouse)
    results = readings_quality.run(DAY, lakehouse=lakehouse)
    assert len(results) == 4
    assert [r.name for r in results if not r.passed] == []


def test_the_contract_refuses_an_impossible_humidity():
    rows = readings_of(DAY)
    rows[5]["humidity_pct"] = 140.0
    with pytest.raises(ValidationError) as refused:
        phlo.validate(rows, ReadingSchema)
    assert [e["column"] for e in refused.value.errors()] == ["humidity_pct"]
