"""Row filters as users write them — ``("ts", ">=", datetime(...))`` tuples, ANDed — converted to
the plain values the engine binds against the table schema."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Sequence
from typing import Any

from phlo.errors import InputError

Filter = tuple[str, str, Any] | tuple[str, str]

_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DATE = dt.date(1970, 1, 1)
_MULTI = {"in", "not in", "not_in", "between"}
_NO_VALUE = {"is null", "is_null", "is not null", "not_null"}


def normalize_filters(
    filters: Filter | Sequence[Filter] | None,
) -> list[tuple[str, str, list[Any]]]:
    if filters is None:
        return []
    if isinstance(filters, tuple) and filters and isinstance(filters[0], str):
        filters = [filters]
    out = []
    for item in filters:
        if not isinstance(item, tuple) or len(item) not in (2, 3) or not isinstance(item[0], str):
            raise InputError(
                f"invalid filter {item!r}; write (column, op, value), e.g. ('id', '=', 1), "
                "('ts', 'between', (low, high)), ('region', 'in', ['eu', 'us']), "
                "('x', 'is null')"
            )
        column, op = item[0], str(item[1]).lower()
        if op in _NO_VALUE:
            values: list[Any] = []
        elif len(item) != 3:
            raise InputError(f"filter {item!r} needs a value", column=column)
        elif op in _MULTI:
            if isinstance(item[2], str | bytes) or not isinstance(item[2], Iterable):
                raise InputError(f"operator {op!r} needs a list of values", column=column)
            values = [_literal(v, column) for v in item[2]]
        else:
            values = [_literal(item[2], column)]
        out.append((column, op, values))
    return out


def _literal(value: Any, column: str) -> Any:
    if hasattr(value, "item") and not isinstance(value, bool | int | float | str):
        value = value.item()  # numpy / pyarrow scalars
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime):
        return ("timestamp_us", timestamp_micros(value))
    if isinstance(value, dt.date):
        return ("date_days", (value - _EPOCH_DATE).days)
    if isinstance(value, decimal.Decimal):
        # Positional notation: str() writes exponents (Decimal("0E-8") is how pyarrow gives a
        # zero of scale 8, Decimal("1E+2") is 100 normalized).
        return format(value, "f")
    raise InputError(f"unsupported filter value {value!r} ({type(value).__name__})", column=column)


def timestamp_micros(value: dt.datetime) -> int:
    """Microseconds since the epoch: UTC for aware datetimes, wall-clock for naive ones."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
