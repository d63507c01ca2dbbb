"""One ingestion run: extract → stage → validate → merge/append on the run's branch → publish.
(TO BE BUILT: see the contract in the lead's notes.)"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from phlo.ingestion.decorator import IngestionDefinition
    from phlo.ingestion.result import IngestionResult
    from phlo.lakehouse import Lakehouse


def execute(
    definition: IngestionDefinition,
    partition_date: str,
    *,
    lakehouse: Lakehouse,
    branch: str,
    target: str,
    run_id: str,
    namespace: str = "raw",
    staging_dir: Path | None = None,
) -> IngestionResult:
    """Runs the pipeline for one partition, writing to `branch` (which exists), without
    publishing. Returns status ``written``, ``no_data`` or ``failed_contract`` (nothing
    written; staged files kept and listed)."""
    raise NotImplementedError


def run_inline(
    definition: IngestionDefinition,
    partition_date: str,
    *,
    lakehouse: Lakehouse | None,
    ref: str,
) -> IngestionResult:
    """`IngestionDefinition.run`: `execute` on a fresh run branch of `ref`, then publish."""
    raise NotImplementedError
