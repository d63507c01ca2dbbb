"""Merge-on-read: phlo's upsert writing position deletes vs phlo copy-on-write, delta-rs merge
and DuckDB's in-database upsert; then what the deletes cost a full scan.

Upsert: the data of `bench_merge.py` — a table of N events and a batch of N/10 rows, half
updates of ids spread over the whole table, half new ids; `--batch-rows B` fixes the batch at B
rows instead (the same for every N: how the time grows with the table alone). Every case builds
its base in a fresh process (not timed) and merges in another fresh *spawned* process, which
reports its time and peak RSS (`VmHWM`).

Scan: a phlo table after 1, 10 and 50 such upserts (each with other keys; `--scan-merges`)
written `merge-on-read` and, separately, `auto` (which rewrites a file once a fifth of its rows
would be deleted; `--scan-modes`), against the same table compacted; each full scan (every
column, to Arrow) runs in its own spawned process, best of `--scan-runs`.

    make release && .venv/bin/python benches/bench_mor.py --rows 1000000 5000000
    .venv/bin/python benches/bench_mor.py --rows 5000000 20000000 --batch-rows 500000 --no-scan
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench_merge import build_delta, build_phlo, delta_merge, generate
from harness import peak_rss_mb, spawn

SCAN_MERGES = [1, 10, 50]
SCAN_MODES = ["merge-on-read", "auto"]


def build_duckdb(data: Path, work: Path) -> None:
    import duckdb

    con = duckdb.connect(str(work / "events.duckdb"))
    con.register("base", pq.read_table(data / "base.parquet"))
    con.execute(
        "CREATE TABLE events (id VARCHAR PRIMARY KEY, ts TIMESTAMPTZ, value DOUBLE, "
        "category VARCHAR)"
    )
    con.execute("INSERT INTO events SELECT * FROM base")
    con.close()


def phlo_mode(mode: str) -> Callable[[pa.Table, Path], Callable[[], object]]:
    def setup(batch: pa.Table, work: Path) -> Callable[[], object]:
        import phlo

        table = phlo.Lakehouse.open(work).table("raw.events")
        return lambda: table.merge(batch, "id", write_mode=mode)

    return setup


def duckdb_upsert(batch: pa.Table, work: Path) -> Callable[[], object]:
    import duckdb

    con = duckdb.connect(str(work / "events.duckdb"))
    con.register("batch", batch)
    return lambda: con.execute("INSERT OR REPLACE INTO events SELECT * FROM batch")


UPSERTS = {
    "phlo merge-on-read": (build_phlo, phlo_mode("merge-on-read")),
    "phlo copy-on-write": (build_phlo, phlo_mode("copy-on-write")),
    "delta-rs merge": (build_delta, delta_merge),
    "duckdb insert or replace": (build_duckdb, duckdb_upsert),
}


def _build_child(name: str, data: str, work: str, queue: mp.Queue) -> None:
    UPSERTS[name][0](Path(data), Path(work))
    queue.put(None)


def _upsert_child(name: str, data: str, work: str, queue: mp.Queue) -> None:
    batch = pq.read_table(Path(data) / "batch.parquet")
    run = UPSERTS[name][1](batch, Path(work))
    started = time.perf_counter()
    result = run()
    # phlo's merge reports where its time went (dedupe, plan, rewrite, write, commit).
    phases = getattr(result, "timings", None) or {}
    queue.put((time.perf_counter() - started, peak_rss_mb(), phases))


def fixed_batch(data: Path, n: int, rows: int) -> None:
    """Replaces `batch.parquet` by one of `rows` rows: half updates of ids spread over the
    base, half new ids (the other columns: the N/10 batch's rows, repeated as needed)."""
    batch = pq.read_table(data / "batch.parquet")
    repeated = pa.concat_tables([batch] * -(-rows // batch.num_rows)).slice(0, rows)
    rng = np.random.default_rng(5)
    updates = rng.choice(n, rows // 2, replace=False)
    inserts = np.arange(rows - rows // 2) + n
    ids = pa.array([f"evt-{i:010d}" for i in np.concatenate([updates, inserts])])
    pq.write_table(repeated.combine_chunks().set_column(0, "id", ids), data / "batch.parquet")


def rekeyed_batches(data: Path, n: int, count: int) -> None:
    """`batch-{j}.parquet`: the batch's rows with other ids — half updates spread over the
    base, half ids no earlier batch inserted."""
    batch = pq.read_table(data / "batch.parquet")
    size = batch.num_rows
    rng = np.random.default_rng(11)
    for j in range(count):
        updates = rng.choice(n, size // 2, replace=False)
        inserts = np.arange(size - size // 2) + n + (j + 1) * size
        ids = pa.array([f"evt-{i:010d}" for i in np.concatenate([updates, inserts])])
        pq.write_table(batch.set_column(0, "id", ids), data / f"batch-{j}.parquet")


def _merges_child(data: str, work: str, merges: int, mode: str, queue: mp.Queue) -> None:
    import phlo

    table = phlo.Lakehouse.open(work).table("raw.events")
    spent = 0.0
    for j in range(merges):
        batch = pq.read_table(Path(data) / f"batch-{j}.parquet")
        started = time.perf_counter()
        table.merge(batch, "id", write_mode=mode)
        spent += time.perf_counter() - started
    stats = table.delete_stats()
    queue.put((stats.delete_files, stats.read_amplification, spent))


def _compact_child(work: str, queue: mp.Queue) -> None:
    import phlo

    phlo.Lakehouse.open(work).table("raw.events").compact()
    queue.put(None)


def _scan_child(work: str, queue: mp.Queue) -> None:
    import phlo

    table = phlo.Lakehouse.open(work).table("raw.events")
    started = time.perf_counter()
    rows = table.scan().to_arrow().num_rows
    queue.put((time.perf_counter() - started, peak_rss_mb(), rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--skip", nargs="*", default=[], help="engines to leave out")
    parser.add_argument("--no-scan", action="store_true", help="only the upserts")
    parser.add_argument("--no-upsert", action="store_true", help="only the scans")
    parser.add_argument("--scan-merges", type=int, nargs="+", default=SCAN_MERGES)
    parser.add_argument("--scan-modes", nargs="+", default=SCAN_MODES, choices=SCAN_MODES)
    parser.add_argument("--scan-runs", type=int, default=3, help="scans timed, best kept")
    parser.add_argument(
        "--batch-rows", type=int, help="upsert batches of this many rows (default: N/10)"
    )
    args = parser.parse_args()
    for n in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            data.mkdir()
            generate(n, data)
            if args.batch_rows:
                fixed_batch(data, n, args.batch_rows)
            if not args.no_upsert:
                results = {}
                for i, name in enumerate(UPSERTS):
                    if name in args.skip:
                        continue
                    work = Path(tmp) / f"work{i}"
                    work.mkdir()
                    spawn(_build_child, name, str(data), str(work))
                    results[name] = spawn(_upsert_child, name, str(data), str(work))
                report_upserts(n, args.batch_rows or n // 10, results)
            if not args.no_scan:
                scans(
                    n, data, Path(tmp) / "scan", args.scan_merges, args.scan_modes, args.scan_runs
                )


def report_upserts(
    n: int, batch: int, results: dict[str, tuple[float, float, dict[str, float]]]
) -> None:
    label = f"upsert {batch:,} rows"
    print(f"{'rows':>10}  {label:<26} {'seconds':>9} {'peak MB':>8} {'vs MoR':>8}")
    mor = results["phlo merge-on-read"][0]
    for name, (seconds, peak, phases) in results.items():
        ratio = "" if name == "phlo merge-on-read" else f"{seconds / mor:.1f}x"
        spent = " ".join(f"{phase} {s:.3f}" for phase, s in phases.items())
        print(f"{n:>10,}  {name:<26} {seconds:>9.3f} {peak:>8.0f} {ratio:>8}  {spent}", flush=True)


def best_scan(table: Path, runs: int) -> tuple[float, float, int]:
    """The fastest of `runs` full scans, each in a fresh process (with its peak RSS)."""
    return min(spawn(_scan_child, str(table)) for _ in range(runs))


def scans(n: int, data: Path, work: Path, counts: list[int], modes: list[str], runs: int) -> None:
    """Full scans of a table after each count of upserts in each write mode, each against the
    same table compacted (same rows, no delete files)."""
    rekeyed_batches(data, n, max(counts))
    print(f"{'rows':>10}  {'full scan':<42} {'seconds':>9} {'peak MB':>8} {'vs compacted':>12}")
    for mode in modes:
        for merges in counts:
            scan_after(n, data, work / f"{mode}-{merges}", mode, merges, runs)


def scan_after(n: int, data: Path, table: Path, mode: str, merges: int, runs: int) -> None:
    table.mkdir(parents=True)
    spawn(_build_child, "phlo merge-on-read", str(data), str(table))
    files, amplification, merging = spawn(_merges_child, str(data), str(table), merges, mode)
    seconds, peak, rows = best_scan(table, runs)
    spawn(_compact_child, str(table))
    compacted, compacted_peak, compacted_rows = best_scan(table, runs)
    assert rows == compacted_rows
    label = f"{mode} x{merges} ({files} dels, x{amplification:.2f})"
    print(
        f"{n:>10,}  {label:<42} {seconds:>9.3f} {peak:>8.0f} "
        f"{seconds / compacted:>11.2f}x  {rows:,} rows, the upserts took {merging:.2f} s",
        flush=True,
    )
    print(f"{n:>10,}  {'  the same, compacted':<42} {compacted:>9.3f} {compacted_peak:>8.0f}")


if __name__ == "__main__":
    main()
