"""Processes writing one table at once (merge, append, delete, compaction, a transaction over
two tables), released together and SIGKILLed at random moments (no failpoints), round after
round, through the SQLite and the PostgreSQL catalog. Each worker owns its keys, so after every
round each worker's rows are those before or after its operation (after, if it reported it
done; a transaction lands on both tables or neither), no key is duplicated, PyIceberg reads the
same rows, and maintenance afterwards keeps them."""

from __future__ import annotations

import datetime as dt
import inspect
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from tests.outside_support import sql_catalog

import phlo

WORKERS, ROUNDS = 3, 10
OPS = ["merge", "append", "delete", "compact", "transaction"]

# A worker: opens the lakehouse, says "ready", waits for "go", runs one operation, says "done"
# (or the error's type when it raised one).
CHILD = textwrap.dedent(
    """
    import sys
    import pyarrow as pa
    import phlo
    from phlo.errors import CommitConflictError
    exec(sys.argv[1])  # batch_of
    root, catalog, op, w, r = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
    print("ready", flush=True)
    sys.stdin.readline()
    try:
        if catalog:
            lh = phlo.Lakehouse.connect(catalog=catalog, warehouse=f"file://{root}/warehouse")
        else:
            lh = phlo.Lakehouse.open(root)
        t = lh.table("raw.t")
        kind, keys = batch_of(op, w, r)
        if op == "merge":
            t.merge(pa.table({"id": keys, "v": [f"m{r}"] * len(keys)}), "id")
        elif op == "append":
            t.append(pa.table({"id": keys, "v": [f"a{r}"] * len(keys)}))
        elif op == "delete":
            t.delete(("id", "in", keys))
        elif op == "compact":
            t.compact()
        else:
            with lh.transaction() as tx:
                tx.table("raw.t").merge(pa.table({"id": keys, "v": [f"x{r}"] * len(keys)}), "id")
                tx.table("raw.u").append(pa.table({"id": keys, "v": [f"x{r}"] * len(keys)}))
        print("done", flush=True)
    except CommitConflictError:
        print("conflict", flush=True)
    except Exception as e:
        print(f"{type(e).__module__}.{type(e).__name__}: {e}".replace(chr(10), " "), flush=True)
    """
)


def batch_of(op: str, worker: int, round: int) -> tuple[str, list[int]]:
    """The keys an operation of `worker` in `round` touches (within the worker's own keys)."""
    base = worker * 1_000_000
    if op == "append":
        return op, [base + 1000 * round + i for i in range(40)]
    if op == "merge":
        return op, [base + k for k in range(3, 1000 * round + 40, 97)]
    if op == "delete":
        return op, [base + k for k in range(round % 5, 1000 * round + 40, 53)]
    if op == "transaction":
        return op, [base + 1000 * round + 500 + i for i in range(10)] + [base + 7]
    return op, []


def applied(model: dict[int, str], op: str, worker: int, round: int) -> dict[int, str]:
    """`model` (one worker's rows of raw.t) after the operation."""
    _, keys = batch_of(op, worker, round)
    out = dict(model)
    if op == "append":
        out.update({k: f"a{round}" for k in keys})
    elif op == "merge":
        out.update({k: f"m{round}" for k in keys})
    elif op == "delete":
        for k in keys:
            out.pop(k, None)
    elif op == "transaction":
        out.update({k: f"x{round}" for k in keys})
    return out


def rows(table: Any) -> dict[int, str]:
    data = table.scan().to_arrow()
    ids = data.column("id").to_pylist()
    duplicated = [k for k, n in Counter(ids).items() if n > 1]
    assert not duplicated, f"duplicated keys {duplicated[:5]}"
    return dict(zip(ids, data.column("v").to_pylist(), strict=True))


def by_worker(table_rows: dict[int, str]) -> list[dict[int, str]]:
    return [{k: v for k, v in table_rows.items() if k // 1_000_000 == w} for w in range(WORKERS)]


def connect(root: Path, catalog: str) -> phlo.Lakehouse:
    """The embedded lakehouse at `root`, or one on PostgreSQL `catalog` with its warehouse there."""
    if not catalog:
        return phlo.Lakehouse.open(root)
    return phlo.Lakehouse.connect(catalog=catalog, warehouse=f"file://{root}/warehouse")


@pytest.fixture(params=["sqlite", "postgresql"])
def setup(request, tmp_path: Path):
    if request.param == "sqlite":
        return tmp_path, ""
    url = request.getfixturevalue("postgres_url")
    return tmp_path, url


def test_random_kills_of_overlapping_writers_leave_each_write_all_or_nothing(setup):
    root, catalog = setup
    lh = connect(root, catalog)
    lh.create_namespace("raw")
    schema = {"id": pa.int64(), "v": pa.string()}
    t, u = lh.create_table("raw.t", schema), lh.create_table("raw.u", schema)
    models: list[dict[int, str]] = [{} for _ in range(WORKERS)]
    tx_keys: set[int] = set()
    rng = random.Random(20261130)
    outcomes: Counter[str] = Counter()
    source = inspect.getsource(batch_of)
    pyiceberg = sql_catalog(lh)

    def start(r: int) -> tuple[list[str], list[subprocess.Popen[str]]]:
        """Round `r`'s workers, started (Python and phlo imported) but waiting for "go"."""
        ops = [rng.choice(OPS) for _ in range(WORKERS)]
        args = [source, str(root), catalog]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, *args, op, str(w), str(r)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for w, op in enumerate(ops)
        ]
        return ops, procs

    # Kills fall in [0, window) after "go"; the window follows how long the operations take on
    # this machine (wider after a round where one was killed, narrower after one where all finished).
    window = 1.5
    following = start(0)
    for r in range(ROUNDS):
        ops, procs = following
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        # The next round's workers start up meanwhile (their start-up is most of a round).
        following = start(r + 1) if r + 1 < ROUNDS else ([], [])
        time.sleep(rng.uniform(0, window))
        for p in procs:
            p.send_signal(signal.SIGKILL)
        said = []
        for p in procs:
            p.wait()
            assert p.stdout is not None
            said.append(p.stdout.read().strip())
            p.stdout.close()
            assert p.stdin is not None
            p.stdin.close()
        assert all(s in ("", "done", "conflict") for s in said), said
        finished = sum(s != "" for s in said)
        window *= 0.7 if finished == WORKERS else 1.5

        now = by_worker(rows(t))
        u_keys = set(rows(u))
        for w, op in enumerate(ops):
            before, after = models[w], applied(models[w], op, w, r)
            assert now[w] in (before, after), f"round {r}: worker {w}'s {op} half-landed"
            if said[w] == "done":
                assert now[w] == after, f"round {r}: worker {w}'s {op} said done but is lost"
            landed = now[w] == after and before != after
            outcomes[f"{op}:{'landed' if landed else said[w] or 'killed'}"] += 1
            if op == "transaction" and landed:
                tx_keys |= set(batch_of(op, w, r)[1])
            models[w] = now[w]
        assert u_keys == tx_keys, f"round {r}: a transaction landed on one table only"
        assert rows(pyiceberg.load_table("raw.t")) == {k: v for m in models for k, v in m.items()}

    cutoff = dt.datetime.now(dt.UTC)
    lh.expire_snapshots(older_than=cutoff)
    lh.remove_orphan_files(older_than=cutoff)
    assert rows(t) == {k: v for m in models for k, v in m.items()}
    assert set(rows(u)) == tx_keys
    pyiceberg.engine.dispose()
    # Kills landed both before and after commits.
    assert any(k.endswith(":landed") for k in outcomes), outcomes
    assert any(k.endswith(":killed") for k in outcomes), outcomes
