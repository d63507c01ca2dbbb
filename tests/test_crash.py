"""Crash safety: a merge killed (SIGKILL) at random moments leaves the table at the old or the
new snapshot — readable by phlo and PyIceberg, never half-written."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog

ROWS = 60_000

# The child opens the table, says "ready", merges batch `k` (upserts half of the keys it
# touches, inserts the rest), then prints its merge time.
CHILD = textwrap.dedent(
    """
    import sys, time
    import pyarrow as pa
    import phlo
    root, k, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    table = phlo.Lakehouse.open(root).table("raw.crash")
    ids = [f"id{i:07d}" for i in range(k * 1000, k * 1000 + rows)]
    batch = pa.table({"id": ids, "version": [k] * rows})
    print("ready", flush=True)
    started = time.perf_counter()
    table.merge(batch, "id")
    print(time.perf_counter() - started, flush=True)
    """
)


def expected_after(state: dict[str, int], k: int) -> dict[str, int]:
    new = dict(state)
    new.update({f"id{i:07d}": k for i in range(k * 1000, k * 1000 + ROWS)})
    return new


def current(table) -> dict[str, int]:
    data = table.scan().to_arrow()
    return dict(zip(data.column("id").to_pylist(), data.column("version").to_pylist(), strict=True))


def start_child(root, k: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(k), str(ROWS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def kill_once_committed(table, proc: subprocess.Popen[str]) -> None:
    """SIGKILLs `proc`, a writer of `table`, as soon as its commit shows (or it ended)."""
    before = table.current_snapshot_id
    while table.current_snapshot_id == before and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)


def test_killed_merges_leave_the_old_or_the_new_snapshot(lh):
    table = lh.create_table("raw.crash", {"id": pa.string(), "version": pa.int64()})
    state: dict[str, int] = {}
    # Two undisturbed runs: the second (which rewrites files, like the killed ones) measures how
    # long a merge takes, to spread the kills over it.
    for k in (0, 1):
        proc = start_child(lh.root, k)
        duration = float(proc.stdout.readline())
        assert proc.wait() == 0
        proc.stdout.close()
        state = expected_after(state, k)
    assert current(table) == state

    kills = 16
    moments = [duration * 1.4 * i / kills for i in range(kills)]
    random.Random(20261125).shuffle(moments)
    outcomes = {"old": 0, "new": 0}
    # The last merge is killed once its commit shows: a kill after a commit, however much
    # slower than the measured one the killed merges run on a loaded machine.
    for k, moment in enumerate([*moments, None], start=2):
        proc = start_child(lh.root, k)
        if moment is None:
            kill_once_committed(table, proc)
        else:
            time.sleep(moment)
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        after = current(table)
        new_state = expected_after(state, k)
        assert after in (state, new_state), f"kill at {moment}s: table is neither old nor new"
        outcomes["new" if after == new_state else "old"] += 1
        state = after
        assert len(table.history()) == 2 + outcomes["new"]
    # Kills landed before the commit (old state) and after it (new state).
    assert outcomes["old"] >= 1 and outcomes["new"] >= 1, outcomes

    pyiceberg = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table(
        "raw.crash"
    )
    assert pyiceberg.scan().to_arrow().num_rows == len(state)
