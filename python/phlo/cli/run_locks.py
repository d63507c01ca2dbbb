"""Which of the command line's Dagster runs still have a process. Each `run_assets` call holds
an exclusive lock on ``<DAGSTER_HOME>/.phlo-cli-runs/<call>.lock`` while its run executes; the
kernel releases it when the process ends, however it ends (SIGKILL included). A free lock
whose runs are still STARTED was left by a process that died mid-run: `repair` marks those
runs failed, with the reason, so that `phlo status` and the Dagster UI stop showing them as
running (Dagster itself only notices with its run-monitoring daemon, which `phlo materialize`
does not run). Runs launched by `phlo dev` (no call tag) are left to Dagster."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg

__all__ = ["held", "repair"]

FOLDER = ".phlo-cli-runs"


@contextlib.contextmanager
def held(home: Path, call: str) -> Iterator[None]:
    """The lock of the runs tagged `call`, held while the block runs."""
    folder = home / FOLDER
    folder.mkdir(exist_ok=True)
    path = folder / f"{call}.lock"
    # Locked under a temporary name, then renamed: `repair` never sees it unlocked.
    fresh = folder / f"{call}.new"
    with fresh.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write(f"pid {os.getpid()} on {socket.gethostname()}")
        lock.flush()
        os.replace(fresh, path)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # before the lock is released (on close)


def repair(instance: dg.DagsterInstance, home: Path, call_tag: str) -> list[str]:
    """Marks failed the unfinished runs whose process is gone (their lock is free); returns
    their ids."""
    folder = home / FOLDER
    repaired: list[str] = []
    for path in sorted(folder.glob("*.lock")) if folder.is_dir() else []:
        with contextlib.suppress(FileNotFoundError), path.open("r") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its process is alive
            owner = lock.read().strip() or "a phlo process"
            repaired += _fail_unfinished(instance, {call_tag: path.stem}, owner)
            path.unlink(missing_ok=True)
    return repaired


def _fail_unfinished(instance: dg.DagsterInstance, tags: dict[str, str], owner: str) -> list[str]:
    import dagster as dg

    failed = []
    for run in instance.get_runs(filters=dg.RunsFilter(tags=tags)):
        if not run.is_finished:
            instance.report_run_failed(
                run,
                message=f"the process running it ({owner}) ended before the run did (killed "
                "or crashed); marked failed by phlo. Its WAP branch, if any, is kept "
                "unpublished; `phlo log` shows any commit it made with WAP off",
            )
            failed.append(run.run_id)
    return failed
