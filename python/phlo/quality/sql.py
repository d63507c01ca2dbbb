"""DuckDB SQL that checks can show and users can run: identifiers quoted, literals escaped, so
column names and values with quotes, semicolons or keywords stay data, never SQL."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

import pyarrow as pa

#: Rows a `repro_sql` returns at most.
REPRO_LIMIT = 1000


def ident(name: str) -> str:
    """A quoted identifier: ``a"b`` → ``"a""b"``."""
    return '"' + name.replace('"', '""') + '"'


def relation(table: str) -> str:
    """A table name as DuckDB sees it once registered (`phlo.quality.duckdb_connection`):
    ``raw.events`` → ``"raw"."events"``."""
    namespace, _, name = table.rpartition(".")
    return f"{ident(namespace)}.{ident(name)}" if namespace else ident(name)


def literal(value: Any) -> str:
    """A SQL literal of a Python value."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return f"CAST('{value}' AS DOUBLE)"
        return repr(value)
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return f"TIMESTAMPTZ '{value.astimezone(dt.UTC).isoformat(sep=' ')}'"
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL literal for {value!r} ({type(value).__name__})")


def is_missing(column: str, field: pa.Field | None) -> str:
    """True where the value is missing as pandas sees it: null, or NaN in a float column."""
    quoted = ident(column)
    if field is not None and pa.types.is_floating(field.type):
        return f"({quoted} IS NULL OR isnan({quoted}))"
    return f"{quoted} IS NULL"


def is_present(column: str, field: pa.Field | None) -> str:
    return f"NOT {is_missing(column, field)}"
