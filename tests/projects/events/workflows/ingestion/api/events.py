import pyarrow as pa
from workflows.ingestion.api.data import events_of
from workflows.schemas.events import EventSchema, UserSchema

from phlo import phlo_ingestion


@phlo_ingestion(
    table_name="events",
    unique_key="id",
    validation_schema=EventSchema,
    group="api",
    cron="0 */1 * * *",
    freshness_hours=(1, 24),
    max_runtime_seconds=120,
    max_retries=2,
    retry_delay_seconds=1,
    merge_strategy="merge",
    merge_config={"deduplication_method": "last"},
)
def api_events(partition_date: str) -> pa.Table:
    """Events of the API, one partition a day."""
    return pa.Table.from_pylist(events_of(partition_date))


@phlo_ingestion(
    table_name="clicks",
    unique_key="id",
    validation_schema=EventSchema,
    group="api",
    cron="30 2 * * *",
    merge_strategy="append",
    strict_validation=False,
)
def api_clicks(partition_date: str) -> list[dict[str, object]]:
    """Clicks, appended; a failing contract only warns."""
    return events_of(partition_date)


@phlo_ingestion(table_name="users", unique_key="id", validation_schema=UserSchema, group="crm")
def crm_users(partition_date: str) -> list[dict[str, object]] | None:
    """Users changed on the day; nothing on weekends."""
    import datetime as dt

    if dt.date.fromisoformat(partition_date).weekday() >= 5:
        return None
    return [{"id": i, "name": f"user {i} on {partition_date}"} for i in range(3)]
