"""The checks the engine evaluates (in Rust, all of one decorator in one pass over the scan):
null, range, uniqueness, freshness, row count, pattern and accepted values. Each also says,
as DuckDB SQL, what it counts (`query_sql`) and which rows fail (`repro_sql`)."""

from __future__ import annotations

import datetime as dt
import decimal
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from phlo.errors import ConfigError
from phlo.quality.base import Finding, QualityCheck, Scope, Severity, check_name
from phlo.quality.sql import REPRO_LIMIT, ident, is_missing, is_present, literal

__all__ = [
    "AcceptedValuesCheck",
    "CountCheck",
    "EngineCheck",
    "FreshnessCheck",
    "NullCheck",
    "PatternCheck",
    "RangeCheck",
    "UniqueCheck",
]


class EngineCheck(QualityCheck):
    """A check the engine evaluates: `spec` is its entry in the engine's plan."""

    @abstractmethod
    def spec(self, scope: Scope) -> dict[str, Any]:
        """The check for the engine (`rust/phlo-core/src/quality/plan.rs`)."""

    def failing_sql(self, scope: Scope) -> str:
        """A DuckDB predicate true for the failing rows."""
        raise NotImplementedError

    def query_sql(self, scope: Scope) -> str:
        return scope.count(self.failing_sql(scope))

    def repro_sql(self, scope: Scope) -> str:
        return scope.select(self.failing_sql(scope))


def _columns(cls: str, columns: Any) -> list[str]:
    if isinstance(columns, str):
        columns = [columns]
    if (
        not isinstance(columns, Sequence)
        or not columns
        or not all(isinstance(c, str) and c for c in columns)
    ):
        raise ConfigError(f"{cls}: columns must be a non-empty list of column names")
    if len(set(columns)) != len(columns):
        raise ConfigError(f"{cls}: columns names a column twice: {list(columns)}")
    return list(columns)


def _column(cls: str, parameter: str, column: Any) -> str:
    if not isinstance(column, str) or not column:
        raise ConfigError(f"{cls}: {parameter} must be a column name, not {column!r}")
    return column


def _value(value: Any) -> Any:
    """A bound or accepted value as the engine's JSON plan carries it."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.isoformat()
    if isinstance(value, dt.date | decimal.Decimal):
        return str(value)
    return value


_SCALARS = (bool, int, float, str, dt.date, decimal.Decimal)


@dataclass(frozen=True, init=False)
class _ColumnsCheck(EngineCheck):
    """A check of a list of columns (`columns`), named ``<prefix>_<columns>``."""

    columns_: list[str]
    allow_threshold: float = 0.0
    severity: Severity = "error"
    #: The name's prefix and the engine's kind of check.
    _prefix: ClassVar[str]
    _kind: ClassVar[str]

    def __init__(
        self, columns: Sequence[str], allow_threshold: float = 0.0, *, severity: Severity = "error"
    ) -> None:
        object.__setattr__(self, "columns_", _columns(type(self).__name__, columns))
        object.__setattr__(self, "allow_threshold", allow_threshold)
        object.__setattr__(self, "severity", severity)
        self._check_settings()

    @property
    def name(self) -> str:
        return check_name(self._prefix, *self.columns_)

    def columns(self) -> list[str]:
        return list(self.columns_)

    def spec(self, scope: Scope) -> dict[str, Any]:
        return {"kind": self._kind, "columns": self.columns_}


@dataclass(frozen=True, init=False)
class NullCheck(_ColumnsCheck):
    """No nulls (or NaN) in `columns`. ``failed_count`` counts null cells; the check passes
    when every column's nulls are at most `allow_threshold` of the rows."""

    _prefix = "null_check"
    _kind = "not_null"

    def passes(self, finding: Finding) -> bool:
        if finding.broken is not None:
            return False
        limit = self.allow_threshold * finding.total_count
        return all(n <= limit for n in finding.details.get("null_counts", {}).values())

    def failing_sql(self, scope: Scope) -> str:
        return " OR ".join(is_missing(c, scope.field(c)) for c in self.columns_)

    def query_sql(self, scope: Scope) -> str:
        cells = " + ".join(
            f"count(*) FILTER (WHERE {is_missing(c, scope.field(c))})" for c in self.columns_
        )
        return f"SELECT {cells} AS failed_count FROM {scope.relation} WHERE {scope.where_sql}"

    def describe(self, finding: Finding) -> str:
        if finding.broken is not None:
            return finding.broken
        counts = finding.details.get("null_counts", {})
        return "nulls: " + ", ".join(f"{c} {n} of {finding.total_count}" for c, n in counts.items())


@dataclass(frozen=True, init=False)
class RangeCheck(EngineCheck):
    """Present values of `column` within ``[min_value, max_value]`` (inclusive; either may be
    None). ``failed_count`` counts present values outside."""

    column: str
    min_value: Any = None
    max_value: Any = None
    allow_threshold: float = 0.0
    severity: Severity = "error"

    def __init__(
        self,
        column: str,
        min_value: Any = None,
        max_value: Any = None,
        allow_threshold: float = 0.0,
        *,
        severity: Severity = "error",
    ) -> None:
        object.__setattr__(self, "column", _column("RangeCheck", "column", column))
        for parameter, bound in (("min_value", min_value), ("max_value", max_value)):
            if bound is not None and not isinstance(bound, _SCALARS):
                raise ConfigError(
                    f"RangeCheck: {parameter} must be a number, string, date or datetime, "
                    f"not {bound!r}"
                )
        if min_value is None and max_value is None:
            raise ConfigError("RangeCheck: give min_value, max_value or both")
        if min_value is not None and max_value is not None:
            try:
                inverted = min_value > max_value
            except TypeError:
                raise ConfigError(
                    f"RangeCheck: min_value {min_value!r} and max_value {max_value!r} "
                    "are not comparable"
                ) from None
            if inverted:
                raise ConfigError(
                    f"RangeCheck: min_value {min_value!r} is above max_value {max_value!r}"
                )
        object.__setattr__(self, "min_value", min_value)
        object.__setattr__(self, "max_value", max_value)
        object.__setattr__(self, "allow_threshold", allow_threshold)
        object.__setattr__(self, "severity", severity)
        self._check_settings()

    @property
    def name(self) -> str:
        return check_name("range_check", self.column)

    def columns(self) -> list[str]:
        return [self.column]

    def spec(self, scope: Scope) -> dict[str, Any]:
        return {
            "kind": "range",
            "column": self.column,
            "min": _value(self.min_value),
            "max": _value(self.max_value),
        }

    def failing_sql(self, scope: Scope) -> str:
        quoted = ident(self.column)
        outside = []
        if self.min_value is not None:
            outside.append(f"{quoted} < {literal(self.min_value)}")
        if self.max_value is not None:
            outside.append(f"{quoted} > {literal(self.max_value)}")
        present = is_present(self.column, scope.field(self.column))
        return f"{present} AND ({' OR '.join(outside)})"


@dataclass(frozen=True, init=False)
class UniqueCheck(_ColumnsCheck):
    """No two rows with the same `columns` (nulls are equal). ``failed_count`` counts every row
    of a duplicated key (pandas' ``duplicated(keep=False)``)."""

    _prefix = "unique_check"
    _kind = "unique"

    def _key(self) -> str:
        return ", ".join(ident(c) for c in self.columns_)

    def query_sql(self, scope: Scope) -> str:
        return (
            "SELECT coalesce(sum(n), 0) AS failed_count FROM (SELECT count(*) AS n "
            f"FROM {scope.relation} WHERE {scope.where_sql} GROUP BY {self._key()} "
            "HAVING count(*) > 1)"
        )

    def repro_sql(self, scope: Scope) -> str:
        return (
            f"SELECT * FROM {scope.relation} WHERE {scope.where_sql} "
            f"QUALIFY count(*) OVER (PARTITION BY {self._key()}) > 1 LIMIT {REPRO_LIMIT}"
        )


@dataclass(frozen=True, init=False)
class FreshnessCheck(EngineCheck):
    """The newest `timestamp_column` value is at most `max_age_hours` older than
    `reference_time` (default: now). When it is too old, ``failed_count`` counts the rows
    older than the cutoff (all of them); otherwise 0. No timestamps at all passes."""

    timestamp_column: str
    max_age_hours: float
    reference_time: dt.datetime | None = None
    severity: Severity = "error"

    def __init__(
        self,
        timestamp_column: str,
        max_age_hours: float,
        reference_time: dt.datetime | None = None,
        *,
        severity: Severity = "error",
    ) -> None:
        object.__setattr__(
            self,
            "timestamp_column",
            _column("FreshnessCheck", "timestamp_column", timestamp_column),
        )
        if (
            isinstance(max_age_hours, bool)
            or not isinstance(max_age_hours, int | float)
            or not max_age_hours > 0
        ):
            raise ConfigError(
                f"FreshnessCheck: max_age_hours must be a positive number, not {max_age_hours!r}"
            )
        if reference_time is not None and not isinstance(reference_time, dt.datetime):
            raise ConfigError(
                f"FreshnessCheck: reference_time must be a datetime, not {reference_time!r}"
            )
        object.__setattr__(self, "max_age_hours", max_age_hours)
        object.__setattr__(self, "reference_time", reference_time)
        object.__setattr__(self, "severity", severity)
        self._check_settings()

    @property
    def name(self) -> str:
        return check_name("freshness_check", self.timestamp_column)

    def columns(self) -> list[str]:
        return [self.timestamp_column]

    def cutoff(self, scope: Scope) -> dt.datetime:
        """The oldest acceptable newest value: UTC-aware for a time-zone-aware column,
        naive UTC wall-clock otherwise."""
        reference = self.reference_time or dt.datetime.now(dt.UTC)
        if reference.tzinfo is None:
            reference = reference.replace(tzinfo=dt.UTC)
        cutoff = reference.astimezone(dt.UTC) - dt.timedelta(hours=self.max_age_hours)
        field = scope.field(self.timestamp_column)
        aware = field is not None and pa.types.is_timestamp(field.type) and field.type.tz
        return cutoff if aware else cutoff.replace(tzinfo=None)

    def spec(self, scope: Scope) -> dict[str, Any]:
        cutoff = self.cutoff(scope).replace(tzinfo=None)
        micros = (cutoff - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1)
        return {"kind": "freshness", "column": self.timestamp_column, "cutoff_us": micros}

    def passes(self, finding: Finding) -> bool:
        return finding.broken is None and finding.failed_count == 0

    def failing_sql(self, scope: Scope) -> str:
        column, cutoff = ident(self.timestamp_column), literal(self.cutoff(scope))
        return (
            f"{column} < {cutoff} AND NOT EXISTS (SELECT 1 FROM {scope.relation} "
            f"WHERE {scope.where_sql} AND {column} >= {cutoff})"
        )

    def describe(self, finding: Finding) -> str:
        if finding.broken is not None:
            return finding.broken
        newest = finding.details.get("newest")
        return (
            f"newest {self.timestamp_column} is {newest}, older than {self.max_age_hours} h"
            f" before the reference time"
        )


@dataclass(frozen=True, init=False)
class CountCheck(EngineCheck):
    """Between `min_rows` and `max_rows` rows (inclusive; either may be None).
    ``failed_count`` is how many rows are missing below the minimum or over the maximum."""

    min_rows: int | None = None
    max_rows: int | None = None
    severity: Severity = "error"

    def __init__(
        self,
        min_rows: int | None = None,
        max_rows: int | None = None,
        *,
        severity: Severity = "error",
    ) -> None:
        for parameter, bound in (("min_rows", min_rows), ("max_rows", max_rows)):
            if bound is not None and (
                isinstance(bound, bool) or not isinstance(bound, int) or bound < 0
            ):
                raise ConfigError(
                    f"CountCheck: {parameter} must be a non-negative integer, not {bound!r}"
                )
        if min_rows is None and max_rows is None:
            raise ConfigError("CountCheck: give min_rows, max_rows or both")
        if min_rows is not None and max_rows is not None and min_rows > max_rows:
            raise ConfigError(f"CountCheck: min_rows {min_rows} is above max_rows {max_rows}")
        object.__setattr__(self, "min_rows", min_rows)
        object.__setattr__(self, "max_rows", max_rows)
        object.__setattr__(self, "severity", severity)
        self._check_settings()

    @property
    def name(self) -> str:
        return "count_check"

    def spec(self, scope: Scope) -> dict[str, Any]:
        return {"kind": "count"}

    def shortfall(self, rows: int) -> int:
        if self.min_rows is not None and rows < self.min_rows:
            return self.min_rows - rows
        if self.max_rows is not None and rows > self.max_rows:
            return rows - self.max_rows
        return 0

    def passes(self, finding: Finding) -> bool:
        return finding.broken is None and finding.failed_count == 0

    def query_sql(self, scope: Scope) -> str:
        return f"SELECT count(*) AS total_count FROM {scope.relation} WHERE {scope.where_sql}"

    def repro_sql(self, scope: Scope) -> str:
        bounds = []
        if self.min_rows is not None:
            bounds.append(f"count(*) < {self.min_rows}")
        if self.max_rows is not None:
            bounds.append(f"count(*) > {self.max_rows}")
        return (
            f"SELECT count(*) AS total_count FROM {scope.relation} WHERE {scope.where_sql} "
            f"HAVING {' OR '.join(bounds)}"
        )

    def describe(self, finding: Finding) -> str:
        return finding.broken or (
            f"{finding.total_count} rows, expected between {self.min_rows} and {self.max_rows}"
        )


@dataclass(frozen=True, init=False)
class PatternCheck(EngineCheck):
    """Present strings of `column` match the regular expression `pattern` at their start
    (Python's ``re.match``; Rust/RE2 syntax: no look-around or back-references)."""

    column: str
    pattern: str
    allow_threshold: float = 0.0
    case_sensitive: bool = True
    severity: Severity = "error"

    def __init__(
        self,
        column: str,
        pattern: str,
        allow_threshold: float = 0.0,
        case_sensitive: bool = True,
        *,
        severity: Severity = "error",
    ) -> None:
        import re

        object.__setattr__(self, "column", _column("PatternCheck", "column", column))
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(
                f"PatternCheck: pattern must be a regular expression, not {pattern!r}"
            )
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"PatternCheck: pattern {pattern!r} does not compile: {exc}"
            ) from None
        object.__setattr__(self, "pattern", pattern)
        object.__setattr__(self, "allow_threshold", allow_threshold)
        object.__setattr__(self, "case_sensitive", bool(case_sensitive))
        object.__setattr__(self, "severity", severity)
        self._check_settings()

    @property
    def name(self) -> str:
        return check_name("pattern_check", self.column)

    def columns(self) -> list[str]:
        return [self.column]

    def spec(self, scope: Scope) -> dict[str, Any]:
        return {
            "kind": "pattern",
            "column": self.column,
            "pattern": self.pattern,
            "case_sensitive": self.case_sensitive,
        }

    def failing_sql(self, scope: Scope) -> str:
        flags = "" if self.case_sensitive else "(?i)"
        regex = literal(f"{flags}^(?:{self.pattern})")
        quoted = ident(self.column)
        return f"{quoted} IS NOT NULL AND NOT regexp_matches({quoted}, {regex})"


@dataclass(frozen=True, init=False)
class AcceptedValuesCheck(EngineCheck):
    """Present values of `column` are among `values` (nulls pass; add a `NullCheck`)."""

    column: str
    values: list[Any]
    allow_threshold: float = 0.0
    severity: Severity = "error"

    def __init__(
        self,
        column: str,
        values: Sequence[Any],
        allow_threshold: float = 0.0,
        *,
        severity: Severity = "error",
    ) -> None:
        object.__setattr__(self, "column", _column("AcceptedValuesCheck", "column", column))
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise ConfigError("AcceptedValuesCheck: values must be a non-empty list of values")
        bad = [v for v in values if v is not None and not isinstance(v, _SCALARS)]
        if bad:
            raise ConfigError(f"AcceptedValuesCheck: values holds unsupported values {bad!r}")
        object.__setattr__(self, "values", [v for v in values if v is not None])
        object.__setattr__(self, "allow_threshold", allow_threshold)
        object.__setattr__(self, "severity", severity)
        self._check_settings()

    @property
    def name(self) -> str:
        return check_name("accepted_values_check", self.column)

    def columns(self) -> list[str]:
        return [self.column]

    def spec(self, scope: Scope) -> dict[str, Any]:
        return {
            "kind": "accepted_values",
            "column": self.column,
            "values": [_value(v) for v in self.values],
        }

    def failing_sql(self, scope: Scope) -> str:
        present = is_present(self.column, scope.field(self.column))
        listed = ", ".join(literal(v) for v in self.values)
        if not listed:
            return present
        return f"{present} AND {ident(self.column)} NOT IN ({listed})"
