"""`PhloSchema`: contracts written as plain annotated classes, read the way their authors mean.

Users of the original framework write::

    class RawGlucoseEntries(PhloSchema):
        _id: str = Field(unique=True)
        sgv: int = Field(ge=1)
        date_string: datetime
        direction: str | None

Pandera's `DataFrameModel` reads three of those annotations differently from what they say, so
`PhloSchema` rewrites them when the class is defined, before Pandera collects its fields:

- ``T | None`` is a *nullable* column (that may also be absent, as dlt leaves out a column
  whose values are all null). Pandera alone makes it "may be absent" and then refuses nulls.
  An explicit ``Field(nullable=...)`` still wins.
- ``datetime`` (and ``pd.Timestamp``) is a UTC timestamp: ``timestamptz`` in Iceberg, which is
  what dlt and most APIs deliver. Pandera alone makes it tz-naive, and appending UTC data to
  the naive table then fails. Declare ``Series[np.datetime64]`` for a naive timestamp.
- A column whose name starts with ``_`` (``_id`` of MongoDB-backed APIs) is a column, under
  that exact name. Pandera alone skips such names silently, so the contract lost the column
  and its checks. An underscore name that cannot be a column fails at class definition.
"""

from __future__ import annotations

import copy
import datetime as dt
import inspect
import sys
import types
import typing
from typing import Annotated, Any

import pandas as pd
import pandera.pandas as pandera
from pandera.api.dataframe.model_components import FieldInfo

from phlo.errors import SchemaError

__all__ = ["PhloSchema"]

#: The dtype plain ``datetime`` annotations become: microseconds (Iceberg's unit), UTC.
UTC_TIMESTAMP: Any = Annotated[pd.DatetimeTZDtype, "us", "UTC"]
_NAIVE_TIMESTAMPS = (dt.datetime, pd.Timestamp)


class PhloSchema(pandera.DataFrameModel):
    """A Pandera `DataFrameModel` with phlo's defaults (``coerce=True``: values are converted
    to the declared types; ``strict=False``: extra columns such as dlt's are allowed) that
    reads plain annotations as written (see the module docs)."""

    class Config:
        coerce = True
        strict = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        _rewrite_columns(cls)
        super().__init_subclass__(**kwargs)  # type: ignore[no-untyped-call]


def _rewrite_columns(cls: type) -> None:
    """Replaces the class's own annotations and fields with ones Pandera reads as meant."""
    raw = dict(inspect.get_annotations(cls))  # as written: strings under __future__
    rewritten: dict[str, Any] = {}
    for name, written in raw.items():
        hint = _resolve(cls, name, written)
        if name.startswith("__") and name.endswith("__"):
            rewritten[name] = written  # Python's own names
            continue
        column = _unmangle(cls, name)
        if column.startswith("_phlo_"):
            raise SchemaError(
                f"{cls.__name__}.{column}: _phlo_* columns are phlo's metadata columns, added "
                "to every ingested table; remove the field from the contract",
                column=column,
            )
        field = _field(cls, name, column)
        optional = _is_optional(hint)
        if optional and not field.nullable_explicit:
            field.nullable, field.nullable_explicit = True, True
        hint = _utc_timestamps(hint)
        attribute = name
        if column.startswith("_"):
            # Pandera skips underscore names: keep the column under a public attribute name
            # whose alias is the column's real name.
            attribute = _free_name(cls, column.lstrip("_") or "column", raw, rewritten)
            if field.alias is None:
                field.alias = column
            if name in cls.__dict__:
                delattr(cls, name)
        field.__set_name__(cls, attribute)
        setattr(cls, attribute, field)
        rewritten[attribute] = hint
    cls.__annotations__ = rewritten


def _resolve(cls: type, name: str, written: Any) -> Any:
    """An annotation as an object (``from __future__ import annotations`` makes strings)."""
    if not isinstance(written, str):
        return written
    module = sys.modules.get(cls.__module__)
    namespace = dict(vars(module)) if module else {}
    try:
        return eval(written, namespace, dict(vars(cls)))
    except Exception as exc:
        raise SchemaError(
            f"{cls.__name__}.{name}: annotation {written!r} cannot be resolved ({exc}); "
            "PhloSchema reads annotations when the class is defined, so import the types it "
            "names at module level",
            column=name,
        ) from exc


def _unmangle(cls: type, name: str) -> str:
    """The name as written: Python stores ``__x`` of class ``C`` as ``_C__x``."""
    prefix = f"_{cls.__name__.lstrip('_')}__"
    return name[len(prefix) - 2 :] if name.startswith(prefix) else name


def _field(cls: type, name: str, column: str) -> FieldInfo:
    """A copy of the column's `Field` (a fresh one when none was assigned)."""
    value = cls.__dict__.get(name, None)
    if value is None:
        return FieldInfo()
    if not isinstance(value, FieldInfo):
        raise SchemaError(
            f"{cls.__name__}.{column} can only be assigned a Field (e.g. "
            f"`{column}: str = Field(unique=True)`), not {value!r}: every annotated "
            "attribute of a contract is a column",
            column=column,
        )
    return copy.copy(value)


def _is_optional(hint: Any) -> bool:
    """Whether the annotation is ``T | None`` / ``Optional[T]``."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    return union and type(None) in typing.get_args(hint)


def _utc_timestamps(hint: Any) -> Any:
    """`hint` with plain ``datetime`` replaced by the UTC timestamp dtype, also inside
    ``| None`` and ``Series[...]``."""
    if _is_naive_timestamp(hint):
        return UTC_TIMESTAMP
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_optional(hint):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _utc_timestamps(inner[0]) | None
        return hint
    series = getattr(origin, "__module__", "").startswith("pandera.typing")
    if series and len(args) == 1 and _is_naive_timestamp(args[0]):
        return origin[UTC_TIMESTAMP]
    return hint


def _is_naive_timestamp(hint: Any) -> bool:
    return any(hint is t for t in _NAIVE_TIMESTAMPS)


def _free_name(cls: type, base: str, *taken: dict[str, Any]) -> str:
    """A public attribute name not used by the class or its annotations."""
    name = base
    while hasattr(cls, name) or any(name in names for names in taken):
        name += "_"
    return name
