"""What an interrupted run left in the lakehouse, said truthfully: with Write-Audit-Publish a
run writes to its own branch, so nothing of it is published; with WAP off it writes straight
to the target, so whatever it committed before the interrupt is there (phlo's commits are
atomic: a table has all of one write or none of it)."""

from __future__ import annotations

from collections.abc import Mapping

from phlo.dagster import tags

__all__ = ["what_was_written"]

#: Commits of the target searched for the run's own (a run commits once per table written).
_LOG_DEPTH = 200


def what_was_written(run_id: str, run_tags: Mapping[str, str]) -> str:
    """One clause for the interrupt message, from the run's tags (`phlo.dagster.tags`) and
    the target's log (commits carry the run's id)."""
    if tags.BRANCH in run_tags:
        return f"nothing published (its writes stay on branch {run_tags[tags.BRANCH]})"
    target = run_tags.get(tags.TARGET)
    if target is None:  # the run had not opened its ref: it wrote nothing
        return "nothing written"
    from phlo.lakehouse_target import open_located

    check = f"`phlo log --ref {target}` lists the commits (run id {run_id})"
    try:
        lh = open_located(run_tags[tags.LAKEHOUSE], run_tags.get(tags.PROJECT, ""))
        commits = [e for e in lh.log(target, _LOG_DEPTH) if e.run_id == run_id]
    except Exception as exc:  # the message must still be printed
        return (
            f"Write-Audit-Publish is off, so what it wrote before the interrupt may be "
            f"committed to {target} (the log could not be read: {exc}); {check}"
        )
    if not commits:
        return (
            f"Write-Audit-Publish is off, but nothing of it was committed to {target}; a "
            f"write under way at the interrupt could still land: {check}"
        )
    written = ", ".join(
        f"{', '.join(e.tables) or e.message} (commit {e.commit_id})" for e in reversed(commits)
    )
    return (
        f"Write-Audit-Publish is off, so it wrote straight to {target}: committed {written}; "
        f"a write under way at the interrupt could still land: {check}"
    )
