"""One Dagster run process of test_distributed_dagster:
``python distributed_worker.py PROJECT JOB_FUNCTION PARTITION BARRIER WORKERS`` (from the
project folder; JOB_FUNCTION is a function of its ``definitions.py`` that returns the job).

Runs one partition of the project's job with Dagster's multiprocess executor (the step runs in
a child process of this one), waits until every worker's run has finished, then publishes its
run (so that the WAP merges into main race: each merge is held before it applies until every
worker's is, at the engine failpoint ``merge.before-apply``), and prints one line of JSON: the
run id, whether it succeeded, the promotion's status, this process's id and when publishing
started and ended.

A plain script (not `multiprocessing`): the steps are started by Dagster from the project's
``definitions.py``, which is what a real deployment's run workers do."""

from __future__ import annotations

import importlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import dagster as dg

import phlo.dagster

#: Every worker creates one file here once its run ended; all publish once all are there.
PUBLISH_STAGE = "published"
#: Every worker's publishing merge is held at this engine failpoint, in a folder of its own.
HELD_POINT, HELD_STAGE = "merge.before-apply", "held"
#: A worker that waits longer than this for the others fails (they did not run at once).
BARRIER_TIMEOUT_S = 300.0


def wait_for_all(folder: Path, stage: str, me: str, count: int) -> None:
    """Marks `me` as arrived at `stage` in `folder`, then waits until `count` have arrived."""
    (folder / f"{stage}.{me}").write_text(str(os.getpid()))
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    while len(list(folder.glob(f"{stage}.*"))) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{stage}: the other workers never arrived in {folder}")
        time.sleep(0.05)


def release_when_all_held(held: Path, count: int) -> None:
    """Lets this worker's merge in `held` apply once every worker's merge is held before
    applying: their publications overlap however the workers are scheduled. On a timeout it
    lets it go on too (the test then sees that they did not overlap)."""
    deadline = time.monotonic() + BARRIER_TIMEOUT_S
    try:
        while len(list(held.parent.glob(f"{HELD_STAGE}.*/{HELD_POINT}.paused"))) < count:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
    finally:
        (held / f"{HELD_POINT}.resume").touch()


def main(project: str, job: str, partition: str, barrier: str, workers: int) -> None:
    # Reconstructable: the multiprocess executor's step processes import it by module name.
    sys.path.insert(0, project)
    recon = dg.reconstructable(getattr(importlib.import_module("definitions"), job))
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            recon,
            instance,
            run_config={"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}},
            tags={"dagster/partition": partition},
            raise_on_error=False,
        )
        wait_for_all(Path(barrier), PUBLISH_STAGE, partition, workers)
        held = Path(barrier) / f"{HELD_STAGE}.{partition}"
        held.mkdir()
        os.environ |= {"PHLO_FAILPOINTS": f"{HELD_POINT}:pause", "PHLO_FAILPOINT_DIR": str(held)}
        releaser = threading.Thread(target=release_when_all_held, args=(held, workers))
        releaser.start()
        started = time.time()
        outcome = phlo.dagster.promote(instance, result.run_id)
        releaser.join()
        report = {
            "partition": partition,
            "run_id": result.run_id,
            "success": result.success,
            "promotion": outcome.status,
            "reason": outcome.reason,
            "pid": os.getpid(),
            "publish": [started, time.time()],
        }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5], int(sys.argv[5]))
