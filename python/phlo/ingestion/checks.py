"""Import-time checks of `@phlo_ingestion` settings: each problem is a `ConfigError` naming
the function and the parameter (``api_events: cron ...``) and saying how to fix it, raised
when the module defining the ingestion is imported rather than at the first scheduled run."""

from __future__ import annotations

import datetime as dt
import difflib
import inspect
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from phlo.errors import ConfigError, PhloError
from phlo.ingestion.decorator import IngestionDefinition

__all__ = [
    "check_cron",
    "check_definition",
    "missing_column_hint",
    "schema_columns",
    "snake_case",
]

#: Table and namespace names: they also make Dagster asset keys (``dlt_<table_name>``).
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TRANSFORMS = ("identity", "year", "month", "day", "hour", "void")
_WIDTH_TRANSFORMS = ("bucket", "truncate")

#: Cron fields: name, lowest, highest, names accepted in place of numbers.
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {name: i + 1 for i, name in enumerate(_MONTHS)}),
    ("day of week", 0, 7, {name: i for i, name in enumerate(_DAYS)}),
)


def check_definition(definition: IngestionDefinition) -> None:
    """Raises `ConfigError` for the first setting of `definition` that cannot work."""
    fn = definition.name
    _check_function(definition)
    _identifier(fn, "table_name", definition.table_name)
    if definition.namespace is not None:
        _identifier(fn, "namespace", definition.namespace)
    if not isinstance(definition.group, str) or not definition.group.strip():
        raise ConfigError(f"{fn}: group must be a non-empty string, not {definition.group!r}")
    if definition.cron is not None:
        check_cron(definition.cron, where=f"{fn}: cron")
    _check_freshness(fn, definition.freshness_hours)
    _check_limits(definition)
    _check_partitions_start(fn, definition.partitions_start)
    columns = _check_schemas(definition)
    _check_unique_key(definition, columns)
    _check_merge(definition, columns)
    _check_partition_spec(definition, columns)


def _check_function(definition: IngestionDefinition) -> None:
    try:
        signature = inspect.signature(definition.fn)
    except (TypeError, ValueError):  # a builtin without a signature: trust it
        return
    params = signature.parameters
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    date = params.get("partition_date")
    if (date is None and not takes_kwargs) or (
        date is not None and date.kind is date.POSITIONAL_ONLY
    ):
        raise ConfigError(
            f"{definition.name}: the function must take a partition_date parameter (the "
            f"partition, 'YYYY-MM-DD'); define it as `def {definition.name}(partition_date: "
            "str):`"
        )
    others = [
        name
        for name, p in params.items()
        if name != "partition_date"
        and p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if others:
        raise ConfigError(
            f"{definition.name}: the function takes required parameters {others} besides "
            "partition_date; phlo passes only partition_date, so give them defaults"
        )


def _identifier(fn: str, what: str, value: Any) -> None:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ConfigError(
            f"{fn}: {what} {value!r} is not a valid name; use letters, digits and '_', "
            "not starting with a digit (e.g. 'api_events')"
        )


def check_cron(cron: Any, *, where: str = "cron") -> None:
    """Checks a 5-field cron expression (minute hour day-of-month month day-of-week; ``*``,
    lists, ranges, steps and month/day names), raising `ConfigError` naming the field."""
    if not isinstance(cron, str):
        raise ConfigError(f"{where} must be a string like '0 * * * *', not {cron!r}")
    fields = cron.split()
    if len(fields) != 5:
        raise ConfigError(
            f"{where} {cron!r} has {len(fields)} fields; a cron expression has 5: minute hour "
            "day-of-month month day-of-week (e.g. '0 */1 * * *', hourly)"
        )
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            problem = _cron_item(item.lower(), low, high, names)
            if problem:
                raise ConfigError(
                    f"{where} {cron!r}: the {name} field {text!r} is invalid ({problem}); "
                    f"use *, a number from {low} to {high}, a range a-b, a list a,b or a step */n"
                )


def _cron_item(item: str, low: int, high: int, names: dict[str, int]) -> str | None:
    """What is wrong with one comma-separated item of a cron field (None: nothing)."""
    base, slash, step = item.partition("/")
    if slash and not (step.isdigit() and int(step) > 0):
        return f"step {step!r} is not a positive number"
    if base == "*":
        return None
    first, dash, last = base.partition("-")
    bounds = [first, last] if dash else [first]
    values = []
    for bound in bounds:
        value = names.get(bound, int(bound) if bound.isdigit() else None)
        if value is None:
            return f"{bound!r} is not a number" + (
                f" or a name ({', '.join(names)})" if names else ""
            )
        if not low <= value <= high:
            return f"{value} is out of range {low}-{high}"
        values.append(value)
    if len(values) == 2 and values[0] > values[1]:
        return f"range {base!r} runs backwards"
    return None


def _check_freshness(fn: str, freshness: Any) -> None:
    if freshness is None:
        return
    pair = (
        list(freshness)
        if isinstance(freshness, Sequence) and not isinstance(freshness, str)
        else None
    )
    if (
        pair is None
        or len(pair) != 2
        or not all(_positive_number(v) for v in pair)
        or pair[0] > pair[1]
    ):
        raise ConfigError(
            f"{fn}: freshness_hours must be a (warn, fail) pair of positive hours with warn <= "
            f"fail, e.g. (1, 24), not {freshness!r}"
        )


def _positive_number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _check_limits(definition: IngestionDefinition) -> None:
    fn = definition.name
    if not _positive_number(definition.max_runtime_seconds):
        raise ConfigError(
            f"{fn}: max_runtime_seconds must be a positive number of seconds, not "
            f"{definition.max_runtime_seconds!r}"
        )
    retries = definition.max_retries
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(
            f"{fn}: max_retries must be a whole number >= 0 (0: no retry), not {retries!r}"
        )
    delay = definition.retry_delay_seconds
    if not (_positive_number(delay) or (not isinstance(delay, bool) and delay == 0)):
        raise ConfigError(f"{fn}: retry_delay_seconds must be a number >= 0, not {delay!r}")
    for flag in ("validate", "strict_validation", "add_metadata_columns"):
        if not isinstance(getattr(definition, flag), bool):
            raise ConfigError(
                f"{fn}: {flag} must be True or False, not {getattr(definition, flag)!r}"
            )


def _check_partitions_start(fn: str, start: Any) -> None:
    if start is None:
        return
    try:
        dt.date.fromisoformat(start)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{fn}: partitions_start must be an ISO date 'YYYY-MM-DD', not {start!r}"
        ) from None


def _check_schemas(definition: IngestionDefinition) -> list[str]:
    """The contract's column names (from `validation_schema`, else `table_schema`)."""
    fn = definition.name
    if definition.validation_schema is None and definition.table_schema is None:
        raise ConfigError(
            f"{fn}: validation_schema is missing; give a Pandera DataFrameModel (the contract "
            "rows are validated against and the table is created from), or table_schema (a "
            "pyarrow schema or {column: type}) with validate=False"
        )
    if definition.validate and definition.validation_schema is None:
        from phlo.schema.iceberg import is_pandera_schema

        if not is_pandera_schema(definition.table_schema):
            raise ConfigError(
                f"{fn}: validate=True needs a Pandera validation_schema to validate against; "
                "give validation_schema, or set validate=False"
            )
    if definition.validation_schema is not None:
        from phlo.schema.iceberg import is_pandera_schema

        if not is_pandera_schema(definition.validation_schema):
            raise ConfigError(
                f"{fn}: validation_schema must be a Pandera DataFrameModel or DataFrameSchema, "
                f"not {definition.validation_schema!r} (a pyarrow schema or {{column: type}} "
                "mapping goes in table_schema)"
            )
    columns: list[str] = []
    for what in ("validation_schema", "table_schema"):
        schema = getattr(definition, what)
        if schema is not None:
            names = schema_columns(schema, where=f"{fn}: {what}")
            columns = columns or names
    return columns


def schema_columns(schema: Any, *, where: str) -> list[str]:
    """The column names of a Pandera model/schema, a pyarrow schema or a ``{column: type}``
    mapping (`ConfigError` naming `where` for anything else)."""
    from phlo._arrow import as_arrow_schema
    from phlo.schema.iceberg import is_pandera_schema
    from phlo.schema.pandera_types import dataframe_schema

    try:
        if is_pandera_schema(schema):
            return [str(name) for name in dataframe_schema(schema)[0].columns]
        if isinstance(schema, Mapping):
            return [str(name) for name in schema]
        return list(as_arrow_schema(schema).names)
    except PhloError as exc:
        raise ConfigError(
            f"{where}: {schema!r} is not a schema; give a Pandera DataFrameModel / "
            "DataFrameSchema, a pyarrow schema or a {column: pyarrow type} mapping"
        ) from exc


def snake_case(name: str) -> str:
    """How dlt's default naming convention spells a camelCase name (``dateString`` →
    ``date_string``): used for hints."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def missing_column_hint(name: str, columns: Sequence[str]) -> str:
    """ " (did you mean 'x'?)" for a name not in `columns`, with dlt's renaming explained when
    that is the likely cause."""
    if snake_case(name) != name and snake_case(name) in columns:
        return (
            f" (did you mean {snake_case(name)!r}? dlt sources normalize column names to "
            "snake_case, so the schema and unique_key use the normalized names)"
        )
    close = difflib.get_close_matches(name, list(columns), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f"; the schema has {list(columns)}"


def _check_columns(fn: str, what: str, names: Sequence[str], columns: Sequence[str]) -> None:
    for name in names:
        if name not in columns:
            raise ConfigError(
                f"{fn}: {what} names column {name!r}, which is not in the schema"
                + missing_column_hint(name, columns),
                column=name,
            )


def _check_unique_key(definition: IngestionDefinition, columns: list[str]) -> None:
    from phlo import _args

    try:
        keys = _args.columns("unique_key", definition.unique_key)
    except PhloError as exc:
        raise ConfigError(f"{definition.name}: {exc.message}") from exc
    _check_columns(definition.name, "unique_key", keys, columns)


def _check_merge(definition: IngestionDefinition, columns: list[str]) -> None:
    from phlo.merge import dedupe_settings

    fn = definition.name
    if definition.merge_strategy not in ("merge", "append"):
        close = difflib.get_close_matches(str(definition.merge_strategy), ["merge", "append"], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{fn}: merge_strategy must be 'merge' (upsert on unique_key) or 'append', not "
            f"{definition.merge_strategy!r}{hint}"
        )
    try:
        _, order_by = dedupe_settings(definition.merge_strategy, definition.merge_config)
    except PhloError as exc:
        raise ConfigError(f"{fn}: merge_config: {exc.message}") from exc
    if order_by is not None:
        _check_columns(fn, "merge_config deduplication_order_by", [order_by], columns)


def _check_partition_spec(definition: IngestionDefinition, columns: list[str]) -> None:
    from phlo.lakehouse import _partition_pairs
    from phlo.schema.iceberg import METADATA_COLUMNS

    if definition.partition_spec is None:
        return
    fn = definition.name
    try:
        pairs = _partition_pairs(definition.partition_spec)
    except PhloError as exc:
        raise ConfigError(f"{fn}: partition_spec: {exc.message}") from exc
    for column, transform in pairs:
        name, _, width = transform.partition("[")
        known = name in _TRANSFORMS and not width
        sized = name in _WIDTH_TRANSFORMS and width[:-1].isdigit() and int(width[:-1]) > 0
        if not (known or sized):
            raise ConfigError(
                f"{fn}: partition_spec: unknown transform {transform!r} on {column!r}; use "
                "identity ('region'), year/month/day/hour ('day(ts)'), 'bucket(16, id)' or "
                "'truncate(4, name)'",
                column=column,
            )
    # phlo's metadata columns are in every table it creates (with add_metadata_columns).
    if definition.add_metadata_columns:
        columns = [*columns, *METADATA_COLUMNS.names]
    _check_columns(fn, "partition_spec", [column for column, _ in pairs], columns)
