"""Pandera schema → validation plan: the part the Rust engine evaluates (`validate` module),
and the checks it cannot, which Pandera runs itself so that every contract is enforced.

Compiled natively: column presence (`required`), `strict` (True / "filter"), dtypes with
`coerce`, `nullable`, `unique` (per column and `Config.unique`), and the built-in checks
eq, ne, gt, ge, lt, le, in_range, isin, notin, str_length, str_matches, str_contains,
str_startswith, str_endswith. Left to Pandera: custom checks (lambdas, `@pa.check`,
registered checks), dataframe-wide checks, grouped checks, regex-named columns.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from phlo.schema.pandera_types import Backend, arrow_type, dataframe_schema

# Pandera check name → (plan op, statistics keys giving the operands, in order).
_BUILTINS: dict[str, tuple[str, tuple[str, ...]]] = {
    "equal_to": ("eq", ("value",)),
    "not_equal_to": ("ne", ("value",)),
    "greater_than": ("gt", ("min_value",)),
    "greater_than_or_equal_to": ("ge", ("min_value",)),
    "less_than": ("lt", ("max_value",)),
    "less_than_or_equal_to": ("le", ("max_value",)),
    "in_range": ("in_range", ("min_value", "max_value")),
    "isin": ("isin", ("allowed_values",)),
    "notin": ("notin", ("forbidden_values",)),
    "str_length": ("str_length", ("min_value", "max_value")),
    "str_matches": ("str_matches", ("pattern",)),
    "str_contains": ("str_contains", ("pattern",)),
    "str_startswith": ("str_startswith", ("string",)),
    "str_endswith": ("str_endswith", ("string",)),
}


class _NotCompilable(Exception):
    """A check phlo does not evaluate natively (Pandera runs it)."""


@dataclass(frozen=True)
class PanderaCheck:
    """A check left to Pandera: where it is and what it is."""

    column: str | None  # None: a dataframe-wide check
    check_number: int
    check: Any = field(repr=False)
    name: str = ""


@dataclass(frozen=True)
class ValidationPlan:
    """A compiled Pandera schema: the JSON plan and declared types for the engine, plus the
    checks Pandera itself must run."""

    schema: Any = field(repr=False)
    backend: Backend
    schema_name: str
    plan_json: str = field(repr=False)
    declared: pa.Schema = field(repr=False)
    #: ``column: check`` of every check the engine evaluates.
    native_checks: list[str]
    #: Checks run by Pandera on the batch (custom, dataframe-wide…).
    pandera_checks: list[PanderaCheck]
    #: Failure cases kept per check (None: all).
    max_failure_cases: int | None = None


def validation_plan(schema: Any, *, max_failure_cases: int | None = None) -> ValidationPlan:
    """Compiles a Pandera `DataFrameModel` (class) or `DataFrameSchema` into a plan."""
    resolved, backend = dataframe_schema(schema)
    name = str(resolved.name or getattr(schema, "__name__", "DataFrameSchema"))
    columns = []
    declared = []
    native: list[str] = []
    by_pandera: list[PanderaCheck] = []
    for column_name, column in resolved.columns.items():
        if getattr(column, "regex", False):  # a name pattern: Pandera resolves and checks it
            by_pandera.append(PanderaCheck(column_name, -1, column, f"regex column {column_name}"))
            continue
        dtype = arrow_type(column.dtype, backend, column_name)
        if dtype is not None:
            declared.append(pa.field(column_name, dtype))
        checks = []
        for number, check in enumerate(column.checks):
            check_name = str(check.error or check.name)
            try:
                checks.append(_compile_check(check, number, check_name, backend))
                native.append(f"{column_name}: {check_name}")
            except _NotCompilable:
                by_pandera.append(PanderaCheck(column_name, number, check, check_name))
        columns.append(
            {
                "name": column_name,
                "dtype_name": str(column.dtype) if column.dtype is not None else None,
                "coerce": bool(column.coerce or resolved.coerce),
                "nullable": bool(column.nullable),
                "unique": bool(column.unique),
                "report_duplicates": str(getattr(column, "report_duplicates", "all")),
                "required": bool(column.required),
                "checks": checks,
            }
        )
    for number, check in enumerate(resolved.checks):
        by_pandera.append(PanderaCheck(None, number, check, str(check.error or check.name)))
    unique = resolved.unique
    plan = {
        "schema_name": name,
        "strict": {True: "error", False: "off", "filter": "filter"}[resolved.strict],
        "unique": [[unique] if isinstance(unique, str) else list(unique)] if unique else [],
        "columns": columns,
        "max_failure_cases": max_failure_cases,
        "backend": backend,
        "report_duplicates": str(getattr(resolved, "report_duplicates", "all")),
    }
    return ValidationPlan(
        schema=resolved,
        backend=backend,
        schema_name=name,
        plan_json=json.dumps(plan),
        declared=pa.schema(declared),
        native_checks=native,
        pandera_checks=by_pandera,
        max_failure_cases=max_failure_cases,
    )


def _compile_check(check: Any, number: int, name: str, backend: Backend) -> dict[str, Any]:
    builtin = _BUILTINS.get(check.name)
    stats = check.statistics or {}
    if builtin is None or getattr(check, "groupby", None) is not None:
        raise _NotCompilable
    op, keys = builtin
    values: list[Any]
    if op in ("isin", "notin"):
        values = [_operand(v) for v in stats[keys[0]]]
    elif op == "str_length":
        exact = stats.get("exact_value")
        low, high = (exact, exact) if exact is not None else (stats.get(k) for k in keys)
        values = [low, high]
    elif op in ("str_matches", "str_contains"):
        pattern = stats[keys[0]]
        if isinstance(pattern, re.Pattern):
            if pattern.flags & ~re.UNICODE:
                raise _NotCompilable
            pattern = pattern.pattern
        values = [str(pattern)]
        if op == "str_matches" and backend == "polars":
            # Pandera-polars anchors by prefixing "^" to the pattern as written (so "a|b"
            # means "^a" or "b" anywhere), unlike Python's re.match.
            op = "str_contains"
            values = [values[0] if values[0].startswith("^") else f"^{values[0]}"]
    else:
        values = [_operand(stats[k]) for k in keys]
    return {
        "number": number,
        "name": name,
        "op": op,
        "values": values,
        "include_min": bool(stats.get("include_min", True)),
        "include_max": bool(stats.get("include_max", True)),
        "ignore_na": bool(check.ignore_na),
    }


def _operand(value: Any) -> Any:
    """A check operand as a JSON scalar the engine casts to the column type."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy / pandas scalars
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise _NotCompilable  # JSON has no NaN/inf
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise _NotCompilable
