"""Commits per second through the catalog with 4 writers: PostgreSQL vs SQLite.

Four spawned processes start behind a barrier; each commits `--commits` one-row appends, either
all to one shared table (every commit races the other writers: losers reload and retry) or each
to a table of its own (commits only meet in the catalog). The same on one writer, as the
baseline. Commits per second = all commits / (last writer done - first writer started), median
of `--runs` runs. A PostgreSQL server is started for the run (tests/postgres_server.py) with
`fsync` turned back on, as SQLite syncs each commit too (`--no-fsync`: off, as in the tests), or
`--url` is used; the warehouse is a local folder in both cases.

    make release
    .venv/bin/python benches/bench_catalog.py --commits 50 --runs 3
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import phlo

WRITERS = 4


def _writer(catalog: str, warehouse: str, table: str, commits: int, barrier, results) -> None:
    lh = phlo.Lakehouse.connect(catalog, warehouse)
    t = lh.table(table)
    barrier.wait()
    started = time.perf_counter()
    for i in range(commits):
        t.append(pa.table({"id": pa.array([i], pa.int64())}))
    results.put((started, time.perf_counter()))


def run(catalog: str, warehouse: str, writers: int, shared: bool, commits: int) -> float:
    lh = phlo.Lakehouse.connect(catalog, warehouse)
    ns = f"b{uuid.uuid4().hex[:8]}"
    lh.create_namespace(ns)
    names = [f"{ns}.shared"] if shared else [f"{ns}.own{w}" for w in range(writers)]
    for name in names:
        lh.create_table(name, {"id": pa.int64()})
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(writers), ctx.Queue()
    procs = [
        ctx.Process(
            target=_writer,
            args=(catalog, warehouse, names[0 if shared else w], commits, barrier, results),
        )
        for w in range(writers)
    ]
    for p in procs:
        p.start()
    spans = [results.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
        assert p.exitcode == 0
    rows = sum(lh.table(name).scan().to_arrow().num_rows for name in names)
    assert rows == writers * commits, "every commit landed"
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return writers * commits / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commits", type=int, default=50, help="commits per writer")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--url", help="a PostgreSQL server to use instead of starting one")
    parser.add_argument(
        "--no-fsync", action="store_true", help="leave the started server's fsync off"
    )
    args = parser.parse_args()
    from postgres_server import running_server

    with contextlib.ExitStack() as stack:
        postgres = args.url or stack.enter_context(running_server())
        if not args.url and not args.no_fsync:
            import psycopg

            with psycopg.connect(postgres, autocommit=True) as con:
                con.execute("ALTER SYSTEM SET fsync = on")
                con.execute("SELECT pg_reload_conf()")
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        warehouse = f"file://{folder / 'warehouse'}"
        catalogs = {"PostgreSQL": postgres, "SQLite": f"sqlite:///{folder / 'catalog.db'}"}
        cases = [(1, True), (WRITERS, True), (WRITERS, False)]
        fsync = "off" if args.no_fsync else "on"
        print(
            f"{args.commits} one-row appends per writer, median of {args.runs} runs, fsync {fsync}"
        )
        print(f"{'writers':<26}" + "".join(f"{name:>14}" for name in catalogs) + "   PG/SQLite")
        for writers, shared in cases:
            label = f"{writers} → {'one table' if shared else 'own tables'}"
            rates = [
                statistics.median(
                    run(uri, warehouse, writers, shared, args.commits) for _ in range(args.runs)
                )
                for uri in catalogs.values()
            ]
            cells = "".join(f"{rate:>10.1f} c/s" for rate in rates)
            print(f"{label:<26}{cells}   {rates[0] / rates[1]:.2f}x", flush=True)


if __name__ == "__main__":
    main()
