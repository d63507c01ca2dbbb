"""Ingestion of the weather readings: one daily partition per run, validated against
`ReadingSchema`, merged into raw.readings by `reading_id` (re-running a day updates it)."""

import pyarrow as pa
from workflows.ingestion.weather.source import readings_of
from workflows.schemas.weather import ReadingSchema

from phlo import phlo_ingestion


@phlo_ingestion(
    table_name="readings",
    unique_key="reading_id",
    validation_schema=ReadingSchema,
    group="weather",
    cron="0 6 * * *",
    freshness_hours=(24, 48),
    merge_strategy="merge",
    merge_config={"deduplication_method": "last"},
)
def weather_readings(partition_date: str) -> pa.Table:
    """Hourly readings of the weather stations, one partition a day."""
    return pa.Table.from_pylist(readings_of(partition_date))
