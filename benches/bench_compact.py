"""Small files: what 1,000 small appends cost a merge, and what compaction gets back.

Tables of the same 1M events (`id` string key, `ts`, `value`, `category`, unpartitioned):
- *1,000 appends*: 1,000 commits of 1,000 rows (an hourly load for six weeks), manifests merged
  on commit (phlo's default, Iceberg's `commit.manifest-merge.*`);
- *1,000 appends, merging off*: the same with `commit.manifest-merge.enabled=false` (one
  manifest per commit, as before manifest merging);
- *1,000 appends + compact*: the first table after `table.compact()`;
- *one 1M append*: the same rows in one commit.

Then the same 100k-row merge into each (half updates of random existing ids, half new ids) and
a full scan. Every table is built by its own process (appends and compaction timed there); each
merge and scan runs in a fresh spawned process. Median of `--runs` runs.

    make bench                                        # release build, all benches
    .venv/bin/python benches/bench_compact.py --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harness import peak_rss_mb, spawn

ROWS = 1_000_000
APPENDS = 1_000
BATCH = 100_000


def generate(folder: Path) -> None:
    rng = np.random.default_rng(11)
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)

    def events(ids: np.ndarray) -> pa.Table:
        k = len(ids)
        return pa.table(
            {
                "id": pa.array([f"evt-{i:010d}" for i in ids]),
                # Loads arrive in time order: each holds about one hour of events.
                "ts": pa.array(
                    start + ids * 3_600_000_000 // (ROWS // APPENDS), pa.timestamp("us", tz="UTC")
                ),
                "value": pa.array(rng.random(k)),
                "category": pa.array(
                    np.array(["click", "view", "purchase", "refund"])[rng.integers(0, 4, k)]
                ),
            }
        )

    pq.write_table(events(np.arange(ROWS)), folder / "base.parquet")
    updates = rng.choice(ROWS, BATCH // 2, replace=False)
    inserts = np.arange(ROWS, ROWS + BATCH - BATCH // 2)
    pq.write_table(events(np.concatenate([updates, inserts])), folder / "batch.parquet")


def _build(kind: str, data: str, work: str, queue) -> None:
    """Builds one table; reports (seconds appending, seconds compacting, files, manifests)."""
    import phlo

    lh = phlo.Lakehouse.open(work)
    lh.create_namespace("raw")
    base = pq.read_table(Path(data) / "base.parquet")
    properties = {"commit.manifest-merge.enabled": "false"} if kind == "merging off" else {}
    table = lh.create_table("raw.events", base.schema, properties=properties)
    started = time.perf_counter()
    if kind == "one append":
        table.append(base)
    else:
        for start in range(0, ROWS, ROWS // APPENDS):
            table.append(base.slice(start, ROWS // APPENDS))
    appending = time.perf_counter() - started
    compacting = 0.0
    if kind == "compacted":
        started = time.perf_counter()
        table.compact()
        compacting = time.perf_counter() - started
    queue.put((appending, compacting, table.scan().files_total, _manifests(lh)))


def _manifests(lh) -> int:
    from pyiceberg.catalog.sql import SqlCatalog

    pyi = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table("raw.events")
    return len(pyi.current_snapshot().manifests(pyi.io))


def _merge(data: str, work: str, queue) -> None:
    import phlo

    batch = pq.read_table(Path(data) / "batch.parquet")
    table = phlo.Lakehouse.open(work).table("raw.events")
    started = time.perf_counter()
    table.merge(batch, "id")
    queue.put((time.perf_counter() - started, peak_rss_mb()))


def _scan(work: str, queue) -> None:
    import phlo

    table = phlo.Lakehouse.open(work).table("raw.events")
    started = time.perf_counter()
    rows = table.to_arrow().num_rows
    queue.put((time.perf_counter() - started, peak_rss_mb(), rows))


TABLES = {
    "1,000 appends": "appends",
    "1,000 appends, merging off": "merging off",
    "1,000 appends + compact": "compacted",
    "one 1M append": "one append",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[tuple]] = {name: [] for name in TABLES}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        generate(data)
        for run in range(args.runs):
            for i, (name, kind) in enumerate(TABLES.items()):
                work = Path(tmp) / f"run{run}-table{i}"
                work.mkdir()
                built = spawn(_build, kind, str(data), str(work))
                scanned = spawn(_scan, str(work))
                merged = spawn(_merge, str(data), str(work))
                assert scanned[2] == ROWS
                runs[name].append((*built, *scanned[:2], *merged))
    report(runs)


def report(runs: dict[str, list[tuple]]) -> None:
    def median(name: str, i: int) -> float:
        return statistics.median(r[i] for r in runs[name])

    floor = median("one 1M append", 6)
    print(
        f"{'table':<28} {'files':>6} {'manifests':>9} {'append s':>9} {'compact s':>9}"
        f" {'scan s':>7} {'merge s':>8} {'merge MB':>8} {'merge vs 1 append':>17}"
    )
    for name in runs:
        print(
            f"{name:<28} {median(name, 2):>6.0f} {median(name, 3):>9.0f} {median(name, 0):>9.2f}"
            f" {median(name, 1):>9.2f} {median(name, 4):>7.3f} {median(name, 6):>8.3f}"
            f" {median(name, 7):>8.0f} {median(name, 6) / floor:>16.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
