"""Parsers for command-line values: filters, ages, sizes, `module:Name` references."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import click

_WHERE = re.compile(
    r"^\s*([\w.-]+)\s+(=|==|!=|<>|<=|>=|<|>|not\s+in|in|between|is\s+not\s+null|is\s+null)"
    r"\s*(.*?)\s*$",
    re.IGNORECASE,
)


def where(text: str) -> tuple[str, str, Any] | tuple[str, str]:
    """``id = 5``, ``region in eu,us``, ``value between 1 and 9``, ``note is null`` → a filter
    tuple; unquoted values that read as numbers are numbers, ``'5'`` stays text."""
    match = _WHERE.match(text)
    if match is None:
        raise click.BadParameter(
            f'{text!r}: write COLUMN OP VALUE, e.g. "id = 5", "region in eu,us", '
            '"value between 1 and 9", "note is null"'
        )
    column, op, rest = match.group(1), " ".join(match.group(2).lower().split()), match.group(3)
    if op.startswith("is "):
        return column, op
    if op == "between":
        parts = re.split(r"\s+and\s+|,", rest, flags=re.IGNORECASE)
        return column, op, tuple(value(p) for p in parts)
    if op in ("in", "not in"):
        return column, op, [value(p) for p in rest.strip("()").split(",")]
    return column, op, value(rest)


def value(text: str) -> Any:
    """A number where the text reads as one; quoted text stays text (`'5'` → "5")."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


def load_object(spec: str) -> Any:
    """``package.module:Name`` (or a file ``path/to/schemas.py:Name``) → the object."""
    import importlib
    import importlib.util
    import sys

    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise click.BadParameter(
            f"{spec!r}: use module:Name, e.g. workflows.schemas.events:EventSchema"
        )
    try:
        if module_name.endswith(".py"):
            loaded = importlib.util.spec_from_file_location("_phlo_cli_schema", module_name)
            if loaded is None or loaded.loader is None:
                raise ImportError(f"cannot load {module_name}")
            module = importlib.util.module_from_spec(loaded)
            loaded.loader.exec_module(module)
        else:
            sys.path.insert(0, ".")
            module = importlib.import_module(module_name)
        return getattr(module, attribute)
    except (ImportError, AttributeError, OSError) as exc:
        raise click.BadParameter(f"cannot load {spec!r}: {exc}") from exc


def age(text: str) -> dt.timedelta:
    """``90s``, ``30m``, ``12h`` or ``5d``."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    try:
        return dt.timedelta(**{units[text[-1]]: float(text[:-1])})
    except (KeyError, ValueError, IndexError):
        raise click.BadParameter(f"{text!r} is not an age like 90s, 30m, 12h or 5d") from None


def size(text: str) -> int:
    """``1048576``, ``512KB``, ``128MB``, ``1GB`` (or KiB/MiB/GiB: the same, powers of 1024)."""
    units = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    lowered = text.strip().lower().removesuffix("ib").removesuffix("b")
    number = lowered.rstrip("kmg")
    try:
        return int(float(number) * units[lowered[len(number) :]])
    except (KeyError, ValueError):
        raise click.BadParameter(f"{text!r} is not a size like 128MB, 512KB or 1GB") from None


def condition(text: str) -> tuple[str, str, Any]:
    """``"day = 2024-01-01"``, ``"id >= 10"``: column, operator, value (int, float or text)."""
    parts = text.split(None, 2)
    if len(parts) != 3:
        raise click.BadParameter(f"{text!r}: write COLUMN OP VALUE, e.g. 'day >= 2024-01-01'")
    column, op, raw = parts
    return column, op, value(raw)
