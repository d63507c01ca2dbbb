"""The base classes of quality checks, and what a check sees of a run (`Scope`) and reports
(`Finding`). Subclass `RowCheck` for a custom row-level rule, or `PythonCheck` for anything
computed while the rows stream past (docs/quality.md, "Custom checks")."""

from __future__ import annotations

import datetime as dt
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from phlo.errors import ConfigError
from phlo.quality.contract import SAMPLE_LIMIT
from phlo.quality.sql import REPRO_LIMIT, ident, literal, relation

if TYPE_CHECKING:
    from phlo.lakehouse import Lakehouse

__all__ = ["CheckPass", "Finding", "PythonCheck", "QualityCheck", "RowCheck", "Scope", "Severity"]

Severity = Literal["error", "warn"]


@dataclass(frozen=True)
class Scope:
    """The rows one run checks: a table at a ref, restricted to a partition, a rolling window
    of partitions, or not at all."""

    #: ``namespace.table``.
    table: str
    ref: str
    #: The checked partition (``2024-01-01``); None for the whole table.
    partition_key: str | None
    #: The column holding each row's partition date.
    partition_column: str
    #: The first and last partition dates checked (inclusive); None for the whole table.
    dates: tuple[dt.date, dt.date] | None
    #: The table's schema.
    schema: pa.Schema
    #: Columns that identify a row in samples (``_phlo_row_id`` when the table has it).
    id_columns: list[str]
    lakehouse: Lakehouse = field(repr=False)

    @property
    def filters(self) -> list[tuple[str, str, Any]]:
        """Scan filters selecting the checked rows (`Table.scan`'s form)."""
        return self.filters_for(self.partition_column, self.schema)

    @property
    def where_sql(self) -> str:
        """The checked rows as a DuckDB predicate (``TRUE`` for the whole table)."""
        return self.where_sql_for(self.partition_column)

    def filters_for(self, column: str, schema: pa.Schema) -> list[tuple[str, str, Any]]:
        """The same partitions of a table (`schema`) whose partition column is `column`."""
        if self.dates is None:
            return []
        index = schema.get_field_index(column)
        textual = index >= 0 and pa.types.is_string(schema.field(index).type)
        low, high = (d.isoformat() if textual else d for d in self.dates)
        return [(column, "=", low)] if low == high else [(column, "between", (low, high))]

    def where_sql_for(self, column: str) -> str:
        if self.dates is None:
            return "TRUE"
        low, high = self.dates
        if low == high:
            return f"{ident(column)} = {literal(low)}"
        return f"{ident(column)} BETWEEN {literal(low)} AND {literal(high)}"

    @property
    def relation(self) -> str:
        """The table in SQL (quoted)."""
        return relation(self.table)

    def field(self, column: str) -> pa.Field | None:
        index = self.schema.get_field_index(column)
        return self.schema.field(index) if index >= 0 else None

    def select(self, predicate: str) -> str:
        """The checked rows where `predicate` holds (at most `REPRO_LIMIT` of them)."""
        return (
            f"SELECT * FROM {self.relation} WHERE {self.where_sql} AND ({predicate}) "
            f"LIMIT {REPRO_LIMIT}"
        )

    def count(self, predicate: str) -> str:
        """How many checked rows `predicate` holds for."""
        return (
            f"SELECT count(*) AS failed_count FROM {self.relation} "
            f"WHERE {self.where_sql} AND ({predicate})"
        )


@dataclass
class Finding:
    """What a check counted over the checked rows."""

    failed_count: int
    total_count: int
    #: Up to `SAMPLE_LIMIT` failing rows, with their id columns.
    sample: list[dict[str, Any]] = field(default_factory=list)
    #: Why the check could not be evaluated (a missing column, a wrong type): it fails.
    broken: str | None = None
    #: Extra metadata (per-column counts, the newest timestamp…).
    details: dict[str, Any] = field(default_factory=dict)
    #: SQL returning the failing rows, when only the pass knows it (else the check's).
    repro_sql: str | None = None


class QualityCheck(ABC):
    """A check of the rows of one table. Every check has a `name` (unique within its
    decorator; Dagster's check name), a `severity` (``error`` blocks when the decorator is
    blocking, ``warn`` only reports) and an `allow_threshold`: the fraction of checked rows
    allowed to fail."""

    severity: Severity = "error"
    allow_threshold: float = 0.0
    #: Who computes the result (the metadata contract's ``source``).
    source: str = "phlo"

    @property
    @abstractmethod
    def name(self) -> str:
        """The check's name: letters, digits and underscores."""

    def columns(self) -> list[str] | None:
        """The columns the check reads; None for every column."""
        return []

    def passes(self, finding: Finding) -> bool:
        """Whether the finding is within the threshold."""
        if finding.broken is not None:
            return False
        return finding.failed_count <= self.allow_threshold * finding.total_count

    def query_sql(self, scope: Scope) -> str:
        """What the check evaluates, as SQL (or a rule someone can read)."""
        return f"{type(self).__name__} on {scope.table}"

    def repro_sql(self, scope: Scope) -> str:
        """DuckDB SQL returning the failing rows (empty when there is no such query)."""
        return ""

    def describe(self, finding: Finding) -> str:
        """The failure in one line."""
        if finding.broken is not None:
            return finding.broken
        return f"{finding.failed_count} of {finding.total_count} rows failed {self.name}"

    def _check_settings(self) -> None:
        """Raises `ConfigError` naming the parameter that cannot work."""
        cls = type(self).__name__
        if self.severity not in ("error", "warn"):
            raise ConfigError(f"{cls}: severity must be 'error' or 'warn', not {self.severity!r}")
        threshold = self.allow_threshold
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0 <= threshold <= 1
        ):
            raise ConfigError(
                f"{cls}: allow_threshold must be a fraction of rows between 0 and 1, "
                f"not {threshold!r}"
            )


class CheckPass(ABC):
    """The running state of one Python-evaluated check over one run's rows."""

    @abstractmethod
    def update(self, batch: pa.RecordBatch) -> None:
        """Sees one batch of checked rows (with at least the check's columns)."""

    @abstractmethod
    def finish(self) -> Finding:
        """The finding once every batch was seen."""


class PythonCheck(QualityCheck):
    """A check evaluated in Python on the batches of the same scan the engine checks."""

    @abstractmethod
    def start(self, scope: Scope) -> CheckPass:
        """A fresh pass over the rows of `scope`."""


class RowCheck(PythonCheck):
    """A row-level rule in Python: implement `failing` (and, for a runnable `repro_sql`,
    `failing_sql`)::

        class PositiveAmount(RowCheck):
            name = "positive_amount"
            def columns(self): return ["amount"]
            def failing(self, batch): return pc.less_equal(batch["amount"], 0)
            def failing_sql(self, scope): return '"amount" <= 0'
    """

    @abstractmethod
    def failing(self, batch: pa.RecordBatch) -> pa.Array:
        """A boolean array: True for the rows of `batch` that fail (null: pass)."""

    def failing_sql(self, scope: Scope) -> str | None:
        """The same rule as a DuckDB predicate, for `repro_sql`; None if there is none."""
        return None

    def query_sql(self, scope: Scope) -> str:
        predicate = self.failing_sql(scope)
        return scope.count(predicate) if predicate else super().query_sql(scope)

    def repro_sql(self, scope: Scope) -> str:
        predicate = self.failing_sql(scope)
        return scope.select(predicate) if predicate else ""

    def start(self, scope: Scope) -> CheckPass:
        return _RowPass(self, scope)


class _RowPass(CheckPass):
    def __init__(self, check: RowCheck, scope: Scope) -> None:
        self.check, self.scope = check, scope
        self.failed = self.total = 0
        self.sample: list[dict[str, Any]] = []

    def update(self, batch: pa.RecordBatch) -> None:
        mask = pc.fill_null(self.check.failing(batch), False)
        self.total += batch.num_rows
        failed = pc.sum(mask).as_py() or 0
        self.failed += failed
        if failed and len(self.sample) < SAMPLE_LIMIT:
            rows = batch.filter(mask).slice(0, SAMPLE_LIMIT - len(self.sample))
            keep = [*self.scope.id_columns, *(self.check.columns() or rows.schema.names)]
            names = [n for n in dict.fromkeys(keep) if n in rows.schema.names]
            self.sample.extend(rows.select(names).to_pylist())

    def finish(self) -> Finding:
        return Finding(self.failed, self.total, self.sample)


_NAME = re.compile(r"[^0-9A-Za-z_]+")


def check_name(*parts: str) -> str:
    """A Dagster-safe name from parts: other characters become ``_``."""
    return _NAME.sub("_", "_".join(parts)).strip("_") or "check"
