"""What durable local commits cost: small commits, and one append into many new partitions.

On an embedded lakehouse in a folder on disk (`--folder`, default the system temp folder: not a
tmpfs, where a sync costs nothing), in this process:
- *one-row appends*: `--commits` appends of one row each to an unpartitioned table: each commit
  writes a data file, a manifest, a manifest list and a metadata file (four file syncs) and
  syncs the folders that got them (`data/`, `metadata/`) and SQLite's journal folder;
- *append into new partitions*: one append of `--partitions` rows, one per identity partition,
  to a fresh table: as many data files and new partition folders, each folder's name synced into
  `data/` before the commit.

Milliseconds per commit and per append, median of `--runs` runs (each on a fresh lakehouse).
Run it on disk and again on a tmpfs (`--folder /dev/shm`), where a sync returns at once: the
difference is what the syncs cost.

    make release
    .venv/bin/python benches/bench_durable.py --commits 100 --partitions 200 --runs 5
    .venv/bin/python benches/bench_durable.py --commits 100 --partitions 200 --runs 5 \
        --folder /dev/shm
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import pyarrow as pa

import phlo


def small_commits(folder: str, commits: int) -> float:
    lh = phlo.Lakehouse.open(folder)
    lh.create_namespace("raw")
    table = lh.create_table("raw.t", {"id": pa.int64()})
    started = time.perf_counter()
    for i in range(commits):
        table.append(pa.table({"id": pa.array([i], pa.int64())}))
    return (time.perf_counter() - started) / commits * 1000


def partitioned_append(folder: str, partitions: int) -> float:
    lh = phlo.Lakehouse.open(folder)
    lh.create_namespace("raw")
    schema = {"id": pa.int64(), "p": pa.string()}
    table = lh.create_table("raw.p", schema, partition_by=["p"])
    rows = pa.table(
        {
            "id": pa.array(range(partitions), pa.int64()),
            "p": pa.array([f"p{i}" for i in range(partitions)]),
        }
    )
    started = time.perf_counter()
    table.append(rows)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commits", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--folder", help="where the lakehouses go (default: the temp folder)")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"small": [], "partitioned": []}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(dir=args.folder) as folder:
            results["small"].append(small_commits(f"{folder}/small", args.commits))
            results["partitioned"].append(partitioned_append(f"{folder}/p", args.partitions))
    print(f"one-row append: {statistics.median(results['small']):.1f} ms per commit")
    print(
        f"append into {args.partitions} new partitions: "
        f"{statistics.median(results['partitioned']):.0f} ms"
    )


if __name__ == "__main__":
    main()
