"""What one ingestion run did."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa

from phlo import display
from phlo.quality.contract import CheckResult

__all__ = ["IngestionResult", "IngestionStatus"]

#: ``published``: written and merged into the target; ``written``: written to the run's branch,
#: publishing is the caller's (Dagster's promotion); ``no_data``: the source returned nothing;
#: ``failed_contract``: the Pandera contract failed (strict), nothing was written.
IngestionStatus = Literal["published", "written", "no_data", "failed_contract"]


@dataclass(frozen=True)
class IngestionResult:
    """The metrics of one run of one `@phlo_ingestion` for one partition."""

    #: ``namespace.table``.
    table: str
    partition_date: str
    run_id: str
    status: IngestionStatus
    #: The ref the run wrote to (its WAP branch, or the target when WAP is off).
    branch: str
    #: The ref the run publishes into.
    target: str
    rows_extracted: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_deleted: int = 0
    duplicates_dropped: int = 0
    #: The snapshot the run's commit made on `branch` (None when nothing was written).
    snapshot_id: int | None = None
    #: The Pandera contract's outcome (``pandera_contract``).
    contract: CheckResult | None = None
    #: The project's `@phlo_quality` checks of the table, run on `branch` for the partition
    #: before publishing (the audit of Write-Audit-Publish; after the commit when WAP is off).
    quality: list[CheckResult] = field(default_factory=list)
    #: Staged Parquet files kept because the run failed after staging (empty on success).
    staged_files: list[Path] = field(default_factory=list)
    #: The table's Arrow schema after the run (None when nothing was written).
    schema: pa.Schema | None = field(default=None, repr=False)
    #: Seconds per phase: extract, stage, validate, merge, commit, audit, publish.
    timings: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def published(self) -> bool:
        return self.status == "published"

    def contract_failure(self) -> str:
        """What a ``failed_contract`` run tells the user: what failed, that nothing was
        written, and where the evidence is kept."""
        message = self.contract.message if self.contract else ""
        folder = self.staged_files[0].parent if self.staged_files else "-"
        kept = f" and the run's branch {self.branch} is kept" if self.branch != self.target else ""
        return (
            f"{self.table} partition {self.partition_date}: the Pandera contract failed "
            f"({message}); nothing was written. The staged input is kept in {folder}{kept}. "
            "Fix the source's rows or the contract, then re-run the partition (the contract's "
            "repro_sql returns the failing rows)."
        )

    def _repr_html_(self) -> str:
        return display.ingestion_html(self)
