"""`@phlo_ingestion` settings are checked when the module is imported: each problem is a
`ConfigError` naming the function and the parameter, with a hint."""

from __future__ import annotations

from typing import Any

import pandera.pandas as pdx
import pyarrow as pa
import pytest
from pandera.typing import Series

from phlo import errors
from phlo.ingestion import IngestionDefinition, phlo_ingestion
from phlo.ingestion.checks import check_cron


class EventSchema(pdx.DataFrameModel):
    event_id: Series[int]
    date_string: Series[str]
    user_name: Series[str] = pdx.Field(nullable=True)
    amount: Series[float]


def declare(**settings: Any) -> IngestionDefinition:
    """Decorates `api_events` with valid settings overridden by `settings`."""
    base: dict[str, Any] = {
        "table_name": "events",
        "unique_key": "event_id",
        "group": "api",
        "validation_schema": EventSchema,
    }
    base.update(settings)

    def api_events(partition_date: str) -> None:
        return None

    return phlo_ingestion(**base)(api_events)


def refused(match: str, **settings: Any) -> errors.ConfigError:
    with pytest.raises(errors.ConfigError, match=match) as info:
        declare(**settings)
    assert str(info.value).startswith("api_events: "), info.value
    return info.value


def test_a_valid_definition_is_accepted_and_stays_callable() -> None:
    definition = declare(
        cron="0 */1 * * *",
        freshness_hours=(1, 24),
        partition_spec=["day(date_string)", "bucket(16, event_id)", "user_name"],
        merge_config={"deduplication_method": "last", "deduplication_order_by": "amount"},
        partitions_start="2024-01-01",
    )
    assert definition(partition_date="2024-01-02") is None
    assert definition.asset_key == "dlt_events"


def test_the_function_must_take_partition_date() -> None:
    def no_date() -> None:
        return None

    def extra(partition_date: str, token: str) -> None:
        return None

    def kwargs(**context: Any) -> None:
        return None

    settings: dict[str, Any] = {
        "table_name": "events",
        "unique_key": "event_id",
        "group": "api",
        "validation_schema": EventSchema,
    }
    with pytest.raises(errors.ConfigError, match=r"^no_date: .*partition_date parameter"):
        phlo_ingestion(**settings)(no_date)
    with pytest.raises(errors.ConfigError, match=r"^extra: .*\['token'\].*give them defaults"):
        phlo_ingestion(**settings)(extra)
    assert phlo_ingestion(**settings)(kwargs).name == "kwargs"


@pytest.mark.parametrize("name", ["", "raw.events", "1events", "my events", 7])
def test_table_name_must_be_an_identifier(name: Any) -> None:
    refused(r"table_name .* is not a valid name; use letters, digits and '_'", table_name=name)


def test_namespace_and_group() -> None:
    refused(r"namespace 'raw.x' is not a valid name", namespace="raw.x")
    refused(r"group must be a non-empty string", group=" ")


@pytest.mark.parametrize(
    ("cron", "problem"),
    [
        ("0 * * *", r"has 4 fields; a cron expression has 5"),
        ("0 * * * * *", r"has 6 fields"),
        ("60 * * * *", r"the minute field '60' is invalid \(60 is out of range 0-59\)"),
        ("0 24 * * *", r"the hour field '24'.*out of range 0-23"),
        ("0 0 0 * *", r"day of month field '0'.*out of range 1-31"),
        ("0 0 * 13 *", r"month field '13'"),
        ("0 0 * foo *", r"month field 'foo'.*'foo' is not a number or a name \(jan"),
        ("0 0 * * 8", r"day of week field '8'.*out of range 0-7"),
        ("*/0 * * * *", r"step '0' is not a positive number"),
        ("5-1 * * * *", r"range '5-1' runs backwards"),
        ("0 0 * * mon-xyz", r"'xyz' is not a number or a name"),
    ],
)
def test_cron_fields_are_parsed(cron: str, problem: str) -> None:
    refused(r"cron .*" + problem, cron=cron)


@pytest.mark.parametrize(
    "cron", ["* * * * *", "0 */1 * * *", "15,45 8-18/2 1-15 jan-jun mon-fri", "0 0 * * 7"]
)
def test_valid_crons_pass(cron: str) -> None:
    check_cron(cron)


def test_cron_check_agrees_with_croniter() -> None:
    from croniter import croniter

    for cron in ["0 */1 * * *", "15,45 8-18/2 1-15 jan-jun mon-fri", "0 0 * * 7", "*/5 * * * *"]:
        check_cron(cron)
        assert croniter.is_valid(cron)
    for cron in ["60 * * * *", "0 * * *", "0 0 * 13 *", "*/0 * * * *"]:
        with pytest.raises(errors.ConfigError):
            check_cron(cron)
        assert not croniter.is_valid(cron)


@pytest.mark.parametrize("freshness", [(24, 1), (0, 1), (1,), (-1, 2), "1,24", (1, float("nan"))])
def test_freshness_hours_is_an_ordered_pair_of_positive_numbers(freshness: Any) -> None:
    refused(
        r"freshness_hours must be a \(warn, fail\) pair .* e\.g\. \(1, 24\)",
        freshness_hours=freshness,
    )


def test_runtime_and_retry_limits() -> None:
    refused(r"max_runtime_seconds must be a positive number", max_runtime_seconds=0)
    refused(r"max_runtime_seconds", max_runtime_seconds="300")
    refused(r"max_retries must be a whole number >= 0", max_retries=-1)
    refused(r"max_retries", max_retries=1.5)
    refused(r"max_retries", max_retries=True)
    refused(r"retry_delay_seconds must be a number >= 0", retry_delay_seconds=-1)
    assert declare(max_retries=0, retry_delay_seconds=0).max_retries == 0
    refused(r"strict_validation must be True or False", strict_validation="yes")


def test_partitions_start_is_an_iso_date() -> None:
    refused(
        r"partitions_start must be an ISO date 'YYYY-MM-DD', not '01/02/2024'",
        partitions_start="01/02/2024",
    )


def test_a_schema_is_required() -> None:
    refused(r"validation_schema is missing; give a Pandera DataFrameModel", validation_schema=None)
    arrow = pa.schema([("event_id", pa.int64())])
    refused(
        r"validate=True needs a Pandera validation_schema",
        validation_schema=None,
        table_schema=arrow,
    )
    assert declare(validation_schema=None, table_schema=arrow, validate=False).table_schema is arrow
    refused(
        r"validation_schema must be a Pandera DataFrameModel .*goes in table_schema",
        validation_schema=arrow,
    )
    refused(
        r"table_schema: 42 is not a schema; give a Pandera",
        validation_schema=None,
        table_schema=42,
        validate=False,
    )


def test_unique_key_columns_must_be_in_the_schema() -> None:
    error = refused(
        r"unique_key names column 'event_idd', .* \(did you mean 'event_id'\?\)",
        unique_key="event_idd",
    )
    assert error.column == "event_idd"
    error = refused(
        r"unique_key names column 'eventId'.*did you mean 'event_id'\? dlt sources normalize "
        r"column names to snake_case",
        unique_key="eventId",
    )
    refused(r"unique_key names column 'zzz'.*the schema has \['event_id'", unique_key="zzz")
    refused(r"unique_key is empty", unique_key=[])
    refused(r"unique_key names column event_id twice", unique_key=["event_id", "event_id"])
    both = declare(unique_key=["event_id", "user_name"])
    assert both.unique_key == ["event_id", "user_name"]


def test_unique_key_against_an_arrow_or_dict_table_schema() -> None:
    schema = {"event_id": pa.int64(), "amount": pa.float64()}
    settings: dict[str, Any] = {"validation_schema": None, "validate": False}
    assert declare(table_schema=schema, **settings).unique_key == ["event_id"]
    with pytest.raises(
        errors.ConfigError, match=r"unique_key names column 'amont'|did you mean 'amount'"
    ):
        declare(table_schema=pa.schema(schema), unique_key="amont", **settings)


def test_merge_strategy_and_merge_config() -> None:
    refused(r"merge_strategy must be 'merge' .* not 'upsert'", merge_strategy="upsert")
    refused(r"did you mean 'append'", merge_strategy="apend")
    refused(r"merge_config: unknown merge_config keys \['dedup'\]", merge_config={"dedup": True})
    refused(
        r"merge_config: deduplication_method must be 'first', 'last' or 'hash'",
        merge_config={"deduplication_method": "newest"},
    )
    refused(
        r"merge_config: merge_config turns deduplication off",
        merge_config={"deduplication": False, "deduplication_method": "last"},
    )
    refused(
        r"merge_config deduplication_order_by names column 'amout'.*did you mean 'amount'",
        merge_config={"deduplication_order_by": "amout"},
    )
    assert (
        declare(merge_strategy="append", merge_config={"deduplication": True}).merge_strategy
        == "append"
    )


def test_partition_spec_parses_and_names_schema_columns() -> None:
    refused(
        r"partition_spec names column 'date_strng'.*did you mean 'date_string'",
        partition_spec=["day(date_strng)"],
    )
    refused(
        r"partition_spec: unknown transform 'week' on 'date_string'",
        partition_spec=["week(date_string)"],
    )
    refused(
        r"partition_spec: unknown transform 'bucket\[x\]'", partition_spec=["bucket(x, event_id)"]
    )
    refused(r"partition_spec: invalid partition field 3", partition_spec=[3])
