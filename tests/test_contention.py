"""Several processes publishing to one catalog at once, started behind a barrier so that they
really overlap: append-only work never fails (no lock errors, no conflicts), upserts into
different keys on their own branches all publish (even random keys, whose ranges overlap),
publishing goes on while main is compacted, and nothing committed is lost."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog

import phlo
import process_support

WORKERS = 4
ROUNDS = 25


def _append_rounds(root: str, worker: int, barrier, results) -> None:
    lh = phlo.Lakehouse.open(root)
    failures = []
    barrier.wait()
    for r in range(ROUNDS):
        key = worker * 1000 + r
        try:
            if r % 2 == 0:
                with lh.transaction(message=f"w{worker} r{r}") as tx:
                    tx.table("raw.a").append([{"id": key}])
                    tx.table("raw.b").append([{"id": key}])
            else:
                _publish_append(lh, f"run-{worker}-{r}", ["raw.a", "raw.b"], key)
        except Exception as e:  # every failure is reported, none may happen
            failures.append(f"round {r}: {type(e).__name__}: {e}")
    results.put((worker, failures))


def _publish_append(lh: phlo.Lakehouse, branch: str, tables: list[str], key: int) -> None:
    """Appends row `key` to `tables` on a new branch, merges it into main and deletes it."""
    lh.create_branch(branch)
    for name in tables:
        lh.table(name, ref=branch).append([{"id": key}])
    lh.merge(branch)
    lh.delete_branch(branch)


def _run_workers(target, root: Path) -> dict[int, list[str]]:
    ctx = process_support.context()
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=target, args=(str(root), w, barrier, results)) for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    reports = dict(results.get(timeout=600) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return reports


def test_concurrent_append_only_publishing_never_fails(lh):
    lh.create_table("raw.a", {"id": pa.int64()})
    lh.create_table("raw.b", {"id": pa.int64()})
    reports = _run_workers(_append_rounds, lh.root)
    assert reports == {w: [] for w in range(WORKERS)}, "no lock errors, no conflicts"
    expected = sorted(w * 1000 + r for w in range(WORKERS) for r in range(ROUNDS))
    for name in ("raw.a", "raw.b"):
        got = sorted(lh.table(name).scan().to_arrow().column("id").to_pylist())
        assert got == expected, f"{name}: every committed row is there, once"
    assert lh.branches() == ["main"], "no branch left behind"


def _publish_or_compact(root: str, worker: int, barrier, results) -> None:
    """Worker 0 compacts `main` over and over; the others publish appends from their own
    branches, as in `_append_rounds`. Compaction only moves rows, so nobody may fail."""
    lh = phlo.Lakehouse.open(root)
    failures = []
    barrier.wait()
    for r in range(ROUNDS):
        try:
            if worker == 0:
                lh.table("raw.a").compact()
                continue
            _publish_append(lh, f"run-{worker}-{r}", ["raw.a"], worker * 1000 + r)
        except Exception as e:  # every failure is reported, none may happen
            failures.append(f"round {r}: {type(e).__name__}: {e}")
    results.put((worker, failures))


def test_publishing_while_main_is_compacted_loses_nothing(lh):
    table = lh.create_table("raw.a", {"id": pa.int64()})
    table.append([{"id": -1}])
    table.append([{"id": -2}])
    reports = _run_workers(_publish_or_compact, lh.root)
    assert reports == {w: [] for w in range(WORKERS)}, "no conflicts, no lock errors"
    expected = sorted([-2, -1] + [w * 1000 + r for w in range(1, WORKERS) for r in range(ROUNDS)])
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == expected
    pyi = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table("raw.a")
    assert sorted(pyi.scan().to_arrow().column("id").to_pylist()) == expected
    assert lh.branches() == ["main"]
    assert any(s.operation == "replace" for s in table.history()), "compactions ran meanwhile"


KEYS_PER_RANGE = 100
UPSERT_ROUNDS = 5


def _seed(table, files: list[list]) -> dict:
    """Appends one file per list of keys, each row `v="initial"`; returns the model."""
    model = {}
    for ids in files:
        table.append(pa.table({"id": ids, "v": ["initial"] * len(ids)}))
        model.update(dict.fromkeys(ids, "initial"))
    return model


def _assert_rows_match(lh, table, model: dict) -> None:
    data = table.scan().to_arrow()
    ids = data.column("id").to_pylist()
    assert len(ids) == len(set(ids)), "no key twice"
    assert dict(zip(ids, data.column("v").to_pylist(), strict=True)) == model
    pyi = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table("raw.t")
    assert pyi.scan().to_arrow().num_rows == len(model)


def _upsert_rounds(root: str, worker: int, barrier, results) -> None:
    """A write-audit-publish run per round: branch, upsert this worker's key range, publish."""
    lh = phlo.Lakehouse.open(root)
    failures = []
    barrier.wait()
    for r in range(UPSERT_ROUNDS):
        base = worker * 1000
        keys = [*range(base, base + 10), base + 500 + r]
        batch = pa.table({"id": keys, "v": [f"w{worker}r{r}"] * len(keys)})
        branch = f"pipeline-run-{worker}-{r}"
        try:
            lh.create_branch(branch)
            lh.table("raw.t", ref=branch).merge(batch, "id")
            lh.merge(branch)
            lh.delete_branch(branch)
        except Exception as e:
            failures.append(f"round {r}: {type(e).__name__}: {e}")
    results.put((worker, failures))


def test_concurrent_upsert_publishes_into_different_key_ranges_all_land(lh):
    table = lh.create_table("raw.t", {"id": pa.int64(), "v": pa.string()})
    model = _seed(table, [list(range(w * 1000, w * 1000 + KEYS_PER_RANGE)) for w in range(WORKERS)])
    reports = _run_workers(_upsert_rounds, lh.root)
    assert reports == {w: [] for w in range(WORKERS)}, "only a real overlap may conflict"
    for w in range(WORKERS):
        last = f"w{w}r{UPSERT_ROUNDS - 1}"
        model.update(dict.fromkeys(range(w * 1000, w * 1000 + 10), last))
        model.update({w * 1000 + 500 + r: f"w{w}r{r}" for r in range(UPSERT_ROUNDS)})
    _assert_rows_match(lh, table, model)


def _uuid_keys(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def _initial_keys(worker: int) -> list[str]:
    return _uuid_keys(100 + worker, KEYS_PER_RANGE)


def _new_keys(worker: int) -> list[str]:
    return _uuid_keys(worker, 200)


def _upsert_random_keys(root: str, worker: int, barrier, results) -> None:
    """One pipeline run (e.g. one partition date): on its own branch, update some of the rows it
    wrote before and insert new ones, all under random UUID keys; publish once every run has
    forked and written (so each merge finds main moved by the others)."""
    lh = phlo.Lakehouse.open(root)
    keys = _initial_keys(worker)[:10] + _new_keys(worker)
    batch = pa.table({"id": keys, "v": [f"w{worker}"] * len(keys)})
    branch = f"pipeline-run-{worker}"
    failures = []
    barrier.wait()
    try:
        lh.create_branch(branch)
        lh.table("raw.t", ref=branch).merge(batch, "id")
        barrier.wait(timeout=300)  # a run that failed above breaks it instead of hanging all
        lh.merge(branch)
    except Exception as e:
        failures.append(f"{type(e).__name__}: {e}")
    results.put((worker, failures))


def test_concurrent_upserts_of_different_random_keys_all_publish(lh):
    """Random keys give every file the same min/max range: only an exact key comparison tells
    that the runs wrote different keys."""
    table = lh.create_table("raw.t", {"id": pa.string(), "v": pa.string()})
    model = _seed(table, [_initial_keys(w) for w in range(WORKERS)])
    reports = _run_workers(_upsert_random_keys, lh.root)
    assert reports == {w: [] for w in range(WORKERS)}, "no run shares a key: all publish"
    for w in range(WORKERS):
        model.update(dict.fromkeys(_initial_keys(w)[:10] + _new_keys(w), f"w{w}"))
    _assert_rows_match(lh, table, model)


def _open_all(roots: list[str], barrier, results) -> None:
    barrier.wait()
    outcomes = []
    for root in roots:
        try:
            phlo.Lakehouse.open(root).namespaces()
            outcomes.append("ok")
        except Exception as e:
            outcomes.append(f"{type(e).__name__}: {e}")
    results.put(outcomes)


def test_processes_opening_an_old_catalog_at_once_upgrade_it_once(tmp_path):
    # Catalogs as PyIceberg 0.x left them: v0 layout (no iceberg_type), none of phlo's tables.
    # Several of them, opened in the same order by every process, so that opens collide.
    roots = [tmp_path / f"c{i}" for i in range(20)]
    for root in roots:
        root.mkdir()
        conn = sqlite3.connect(root / "catalog.db")
        conn.executescript(
            """CREATE TABLE iceberg_tables (catalog_name VARCHAR(255) NOT NULL,
               table_namespace VARCHAR(255) NOT NULL, table_name VARCHAR(255) NOT NULL,
               metadata_location VARCHAR(1000), previous_metadata_location VARCHAR(1000),
               PRIMARY KEY (catalog_name, table_namespace, table_name));"""
        )
        conn.close()
    ctx = process_support.context()
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    args = ([str(r) for r in roots], barrier, results)
    procs = [ctx.Process(target=_open_all, args=args) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert outcomes == [["ok"] * len(roots)] * WORKERS
    for root in roots:
        conn = sqlite3.connect(root / "catalog.db")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(iceberg_tables)")}
        assert "iceberg_type" in columns


# A transaction in a child process: says "ready", then appends to both tables on its private
# branch and merges; killed at a random moment.
TX_CHILD = textwrap.dedent(
    """
    import sys
    import pyarrow as pa
    import phlo
    root, k = sys.argv[1], int(sys.argv[2])
    lh = phlo.Lakehouse.open(root)
    rows = pa.table({"id": list(range(k * 10_000, k * 10_000 + 20_000))})
    print("ready", flush=True)
    with lh.transaction() as tx:
        tx.table("raw.a").append(rows)
        tx.table("raw.b").append(rows)
    print("done", flush=True)
    """
)


def _internal_branches(root: Path) -> int:
    conn = sqlite3.connect(root / "catalog.db")
    return conn.execute("SELECT count(*) FROM phlo_refs WHERE owner IS NOT NULL").fetchone()[0]


def test_killed_transactions_stay_all_or_nothing_and_their_branches_are_cleaned_up(lh):
    a = lh.create_table("raw.a", {"id": pa.int64()})
    b = lh.create_table("raw.b", {"id": pa.int64()})
    rng = random.Random(20261129)
    for k in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", TX_CHILD, str(lh.root), str(k)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        ids_a = sorted(a.scan().to_arrow().column("id").to_pylist())
        ids_b = sorted(b.scan().to_arrow().column("id").to_pylist())
        assert ids_a == ids_b, f"kill {k}: both tables or neither"
        assert lh.branches() == ["main"], "private branches are not listed"
    left = _internal_branches(lh.root)
    lh.expire_snapshots(older_than=phlo_now())
    assert _internal_branches(lh.root) == 0, f"{left} abandoned branches removed by maintenance"


def phlo_now():
    import datetime as dt

    return dt.datetime.now(dt.UTC)


def test_a_live_transactions_branch_survives_maintenance(lh):
    a = lh.create_table("raw.a", {"id": pa.int64()})
    with lh.transaction() as tx:
        tx.table("raw.a").append([{"id": 1}])
        lh.expire_snapshots(older_than=phlo_now())
        lh.remove_orphan_files(older_than=phlo_now())
        assert _internal_branches(lh.root) == 1, "its owner (this process) is alive"
    assert a.scan().to_arrow().column("id").to_pylist() == [1]
    assert _internal_branches(lh.root) == 0
