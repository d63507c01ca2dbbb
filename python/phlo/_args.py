"""Checks of public arguments before they reach the engine: a wrong type or range raises
`InputError` naming the argument, instead of the `TypeError` / `OverflowError` the native
conversion would raise (or, for a zero batch size, a silently empty result)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from phlo.errors import InputError

#: Integers the engine takes are 64-bit.
_INT64 = (-(2**63), 2**63 - 1)


def text(what: str, value: Any) -> str:
    """A string argument (a name, a ref, an option)."""
    if not isinstance(value, str):
        raise InputError(f"{what} must be a string, not {value!r} ({type(value).__name__})")
    return value


def optional_text(what: str, value: Any) -> str | None:
    return None if value is None else text(what, value)


def flag(what: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{what} must be True or False, not {value!r}")
    return value


def integer(what: str, value: Any, *, minimum: int = _INT64[0]) -> int:
    """A whole number from `minimum` to 2^63-1 (booleans are refused: `True` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{what} must be a whole number, not {value!r} ({type(value).__name__})")
    if not minimum <= value <= _INT64[1]:
        low = "-2^63" if minimum == _INT64[0] else str(minimum)
        raise InputError(f"{what} must be from {low} to 2^63-1, not {value}")
    return int(value)


def optional_integer(what: str, value: Any, *, minimum: int = _INT64[0]) -> int | None:
    return None if value is None else integer(what, value, minimum=minimum)


def string_map(what: str, value: Any) -> dict[str, str]:
    """Properties: a mapping of strings to strings (``None`` is empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"{what} must be a mapping of strings to strings, not {value!r}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise InputError(
                f"{what} must map strings to strings; {key!r}: {item!r} does not "
                "(convert the value with str())"
            )
    return dict(value)


def columns(what: str, value: Any) -> list[str]:
    """One column name or a sequence of them: non-empty names, at least one, each once."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, Sequence) or not all(isinstance(n, str) for n in names):
        raise InputError(f"{what} must be a column name or a list of them, not {value!r}")
    if not names:
        raise InputError(f"{what} is empty; name at least one column")
    if "" in names:
        raise InputError(f"{what} holds an empty column name", column="")
    repeated = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if repeated is not None:
        raise InputError(f"{what} names column {repeated} twice", column=repeated)
    return list(names)
