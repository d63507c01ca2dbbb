"""The metadata contract every check result carries, whoever computed it (the Pandera contract
of an ingestion, a `@phlo_quality` check, a dbt test): the same keys in Dagster's UI, in logs
and in results returned to scripts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from phlo import display

__all__ = ["CheckResult"]

#: Rows of failing data a result carries at most.
SAMPLE_LIMIT = 20


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check over the rows of one partition (or a whole table)."""

    #: The check's name, e.g. ``pandera_contract``.
    name: str
    passed: bool
    #: Who computed it: ``pandera``, ``phlo``, ``dbt``.
    source: str
    #: The checked partition (``2024-01-01``), or None for a whole table.
    partition_key: str | None
    #: Failing rows (or cells, as the check defines).
    failed_count: int
    #: Rows checked.
    total_count: int
    #: What was evaluated, as a query or a rule someone can read.
    query_or_sql: str
    #: Up to `SAMPLE_LIMIT` failing rows or failure cases.
    sample: list[dict[str, Any]] = field(default_factory=list)
    #: SQL that finds the failing rows of the checked table and partition.
    repro_sql: str = ""
    #: ``error`` blocks publishing when the check is blocking; ``warn`` only reports.
    severity: Literal["error", "warn"] = "error"
    #: The failure in one line, empty when passed.
    message: str = ""
    #: Further metadata of the check (files scanned, per-column counts…), after the
    #: contract's keys in `metadata()`.
    details: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """The contract's keys, as Dagster asset check metadata takes them."""
        contract = {
            "source": self.source,
            "partition_key": self.partition_key or "",
            "failed_count": self.failed_count,
            "total_count": self.total_count,
            "query_or_sql": self.query_or_sql,
            "sample": self.sample[:SAMPLE_LIMIT],
            "repro_sql": self.repro_sql,
        }
        return {**contract, **{k: v for k, v in self.details.items() if k not in contract}}

    def summary(self) -> str:
        """A short markdown summary for a UI (Dagster's check description)."""
        status = "passed" if self.passed else f"**failed** ({self.severity})"
        where = f"partition `{self.partition_key}`" if self.partition_key else "the whole table"
        lines = [
            f"`{self.name}` {status} on {where}: {self.failed_count} of {self.total_count} "
            "rows failed."
        ]
        if self.message:
            lines.append(f"\n{self.message}")
        if self.repro_sql and not self.passed:
            lines.append(f"\nFailing rows:\n```sql\n{self.repro_sql}\n```")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return display.check_html(self)
