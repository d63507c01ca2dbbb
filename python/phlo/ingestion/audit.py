"""The audit of an inline ingestion run (`IngestionDefinition.run`): the project's
`@phlo_quality` checks of the ingested table, run on the run's branch for its partition before
publishing, as Dagster runs them as asset checks (`phlo.dagster.quality`). A failing blocking
``error`` check, or a quality definition that could not run, keeps the run unpublished."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from phlo.errors import QualityCheckError

if TYPE_CHECKING:
    from phlo.ingestion.result import IngestionResult
    from phlo.lakehouse import Lakehouse
    from phlo.quality.contract import CheckResult
    from phlo.quality.decorator import QualityDefinition

__all__ = ["Audit", "audit", "blocked", "checks_of"]


@dataclass(frozen=True)
class Audit:
    """What the checks found: every result, the blocking failures (``definition.check``) and
    the definitions that raised (``definition: error``)."""

    results: list[CheckResult] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    broken: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failed and not self.broken

    def reasons(self) -> str:
        reasons = []
        if self.failed:
            reasons.append(f"blocking quality checks failed: {'; '.join(self.failed)}")
        if self.broken:
            reasons.append(f"quality checks could not run: {'; '.join(self.broken)}")
        return "; ".join(reasons)


#: Per project root: the stamps of its workflow files, and the quality definitions found in them.
_found: dict[Path, tuple[frozenset[tuple[str, int, int]], list[QualityDefinition]]] = {}


def checks_of(root: Path, table: str) -> list[QualityDefinition]:
    """Every `@phlo_quality` of project `root` whose table is `table`, found as Dagster finds
    them (`phlo.discovery`); a workflow module that fails to import is a `ConfigError`. What
    was found is kept until a workflow file is added, removed or changed, so that a loop over
    partitions imports the workflows once."""
    return [d for d in _quality_of(root) if d.table == table]


def _quality_of(root: Path) -> list[QualityDefinition]:
    from phlo.discovery import WORKFLOWS, discover, workflow_modules

    root = root.resolve()
    stamp = frozenset(_stamp(file) for _, file in workflow_modules(root))
    found = _found.get(root)
    if found is not None and found[0] == stamp:
        return found[1]
    if found is not None:
        # Modules imported before the change would be found again: import them afresh.
        for name in [n for n in sys.modules if n == WORKFLOWS or n.startswith(WORKFLOWS + ".")]:
            del sys.modules[name]
        importlib.invalidate_caches()
    quality = discover(root).quality
    _found[root] = (stamp, quality)
    return quality


def _stamp(file: Path) -> tuple[str, int, int]:
    stat = file.stat()
    return str(file), stat.st_mtime_ns, stat.st_size


def audit(
    definitions: list[QualityDefinition], partition_date: str, lakehouse: Lakehouse, ref: str
) -> tuple[Audit, Exception | None]:
    """Runs every definition at `ref`, over the partition when partition-aware. A definition
    that raises is recorded and the others still run; the first such exception is returned to
    chain to the error."""
    found = Audit()
    first: Exception | None = None
    for definition in definitions:
        partition = partition_date if definition.partition_aware else None
        try:
            results = definition.run(partition, lakehouse=lakehouse, ref=ref)
        except Exception as exc:  # a check that cannot run blocks, as in Dagster
            found.broken.append(f"{definition.name}: {type(exc).__name__}: {exc}")
            first = first or exc
            continue
        found.results.extend(results)
        found.failed.extend(
            f"{definition.name}.{r.name} ({r.message})"
            for r in results
            if definition.blocking and r.severity == "error" and not r.passed
        )
    return found, first


def blocked(result: IngestionResult, found: Audit) -> QualityCheckError:
    """The error of a run the audit kept unpublished: what failed, where the rows are, how to
    go on."""
    message = (
        f"{result.table} partition {result.partition_date}: run {result.run_id} was not "
        f"published to {result.target} ({result.target} is unchanged): {found.reasons()}. "
        f"The run's branch {result.branch} is kept: read it with ref={result.branch!r} (each "
        "result's repro_sql returns the failing rows). Fix the source's rows or the checks, "
        "then re-run the partition."
    )
    error = QualityCheckError(message, table=result.table, results=found.results)
    error.result = result
    return error
