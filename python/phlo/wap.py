"""Write-Audit-Publish: every pipeline run writes to its own branch and publishes all its tables
in one catalog merge once its blocking checks passed.

    run → branch ``pipeline-run-{run_id}`` from the target → writes land there → checks run
    there → `promote`: one merge into the target (all tables together), then the branch is
    deleted → or, on a failure, the target is untouched and the branch kept for investigation;
    `cleanup` removes branches of finished runs older than the retention.

Promotion is idempotent: the merge records the run id in its log entry (``wap.published``, and
its run id), and `promote` looks for that entry before merging, so a crash between
the merge and deleting the branch never merges twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from phlo import _args
from phlo.errors import CatalogError, InputError

if TYPE_CHECKING:
    from phlo.lakehouse import Lakehouse, LogEntry, RefMergeResult

__all__ = [
    "RUN_BRANCH_PREFIX",
    "Promotion",
    "cleanup",
    "ensure_run_branch",
    "find_promotion",
    "promote",
    "run_branch",
    "run_branches",
    "staging_folder",
]

RUN_BRANCH_PREFIX = "pipeline-run-"
#: Property of the merge that published a run (its value is the run id). Not under ``phlo.``:
#: the log keeps only properties outside phlo's own namespace.
PUBLISHED_PROPERTY = "wap.published"
#: How far back in the target's log `promote` looks for an earlier promotion of a run.
_LOOKBACK = 100_000
#: How far back a promotion that just happened is looked for.
_RECENT = 1_000


@dataclass(frozen=True)
class Promotion:
    """What `promote` did for one run."""

    run_id: str
    branch: str
    target: str
    #: ``published``: merged now; ``already_published``: an earlier promotion merged it (only
    #: the branch was cleaned up now); ``no_branch``: the run has no branch and no promotion
    #: (it wrote nothing).
    status: Literal["published", "already_published", "no_branch"]
    #: The log entry of the publishing merge (None for ``no_branch``).
    commit: LogEntry | None = None
    #: Tables the merge fast-forwarded, added and rebased (None unless merged now).
    merge: RefMergeResult | None = None

    @property
    def tables(self) -> list[str]:
        """Tables the publishing merge changed."""
        return list(self.commit.tables) if self.commit else []


def run_branch(run_id: str) -> str:
    """The branch a run writes to."""
    return RUN_BRANCH_PREFIX + _args.text("run_id", run_id)


def ensure_run_branch(lakehouse: Lakehouse, run_id: str, target: str = "main") -> str:
    """Creates the run's branch from `target` unless it exists (whichever of a run's assets,
    or a sensor, comes first creates it; the others find it). Returns its name."""
    branch = run_branch(run_id)
    if branch in lakehouse.branches():
        return branch
    try:
        lakehouse.create_branch(branch, from_ref=target)
    except CatalogError:
        # Another process of the same run created it between the check and the create.
        if branch not in lakehouse.branches():
            raise
    return branch


def find_promotion(
    lakehouse: Lakehouse, run_id: str, target: str = "main", *, lookback: int = _LOOKBACK
) -> LogEntry | None:
    """The log entry of the merge that published `run_id` into `target`, if there was one
    among the newest `lookback` changes of `target`."""
    for entry in lakehouse.log(ref=target, limit=lookback):
        if entry.properties.get(PUBLISHED_PROPERTY) == run_id:
            return entry
    return None


def promote(
    lakehouse: Lakehouse,
    run_id: str,
    target: str = "main",
    *,
    message: str | None = None,
) -> Promotion:
    """Publishes run `run_id`: merges its branch into `target` (every table it wrote, in one
    merge), then deletes the branch. Idempotent: a run already published is not merged
    again. A conflict (`CommitConflictError`) leaves the target untouched and the branch
    kept."""
    branch = run_branch(run_id)
    earlier = find_promotion(lakehouse, run_id, target)
    if earlier is None and branch in lakehouse.branches():
        try:
            merged = lakehouse.merge(
                branch,
                into=target,
                message=message or f"publish run {run_id}",
                properties={PUBLISHED_PROPERTY: run_id, "phlo.run-id": run_id},
            )
        except InputError:
            # The branch is gone: a concurrent promotion of the run (the sensor and a manual
            # call) merged and removed it after our look.
            earlier = find_promotion(lakehouse, run_id, target, lookback=_RECENT)
            if earlier is None:
                raise
        else:
            # The merge just landed: it is among the newest entries, not worth a full lookback.
            commit = find_promotion(lakehouse, run_id, target, lookback=_RECENT)
            _delete_branch(lakehouse, branch)
            return Promotion(run_id, branch, target, "published", commit, merged)
    if earlier is None:
        # No branch: the run wrote nothing, or a concurrent promotion just published it.
        earlier = find_promotion(lakehouse, run_id, target, lookback=_RECENT)
        if earlier is None:
            return Promotion(run_id, branch, target, "no_branch")
    _delete_branch(lakehouse, branch)
    return Promotion(run_id, branch, target, "already_published", earlier)


def _delete_branch(lakehouse: Lakehouse, branch: str) -> None:
    """Deletes a published run's branch, unless a concurrent promotion of the run did."""
    if branch in lakehouse.branches():
        with contextlib.suppress(InputError):
            lakehouse.delete_branch(branch)


def run_branches(lakehouse: Lakehouse) -> dict[str, dt.datetime]:
    """Every run branch's run id and when the branch was created."""
    found = {}
    for name, _source, created_at_ms in lakehouse._native.list_refs("branch"):
        if name.startswith(RUN_BRANCH_PREFIX):
            created = dt.datetime.fromtimestamp(created_at_ms / 1000, dt.UTC)
            found[name.removeprefix(RUN_BRANCH_PREFIX)] = created
    return found


def staging_folder(lakehouse: Lakehouse, run_id: str) -> Path:
    """Where a run stages its input (``<scratch>/staging/<run_id>/<table>/``) until its
    commit succeeded; a failed or killed run leaves it for `cleanup`."""
    return lakehouse.scratch_dir / "staging" / _args.text("run_id", run_id)


def cleanup(
    lakehouse: Lakehouse,
    retention: dt.timedelta,
    *,
    removable: Callable[[str], bool],
    now: dt.datetime | None = None,
) -> list[str]:
    """Deletes the branches of runs older than `retention` (by branch creation) for which
    `removable(run_id)` is true — the caller says which runs are finished and not waiting to
    be published (Dagster's sensor asks the instance) —, with their staged input. Staged
    input of runs without a branch (killed after publishing, WAP off) goes by the same rule,
    aged by its folder's time. Returns the deleted branch names."""
    now = now or dt.datetime.now(dt.UTC)
    deleted = []
    branches = run_branches(lakehouse)
    for run_id, created in sorted(branches.items()):
        if now - created < retention or not removable(run_id):
            continue
        branch = run_branch(run_id)
        lakehouse.delete_branch(branch)
        deleted.append(branch)
        shutil.rmtree(staging_folder(lakehouse, run_id), ignore_errors=True)
    staging = lakehouse.scratch_dir / "staging"
    for folder in sorted(staging.iterdir()) if staging.is_dir() else []:
        if run_branch(folder.name) in deleted or folder.name in branches:
            continue  # removed above, or kept with its branch
        with contextlib.suppress(FileNotFoundError):
            created = dt.datetime.fromtimestamp(folder.stat().st_mtime, dt.UTC)
            if now - created >= retention and removable(folder.name):
                shutil.rmtree(folder, ignore_errors=True)
    return deleted
