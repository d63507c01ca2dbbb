"""Append and scan: phlo vs PyIceberg (and the pyarrow Parquet write as the I/O floor).

Each case runs in a fresh *spawned* process on the same generated input (a Parquet file written
once), timing only the measured operation and reading peak RSS (VmHWM) at the end, so one case's
memory never shows up in another's. Prints a table and phlo's speed ratio against each peer.

    make bench                                  # release build, N = 1M and 5M
    .venv/bin/python benches/bench_append_scan.py --rows 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harness import peak_rss_mb, spawn

DAYS = 30


def generate(n: int, path: Path) -> None:
    rng = np.random.default_rng(42)
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    ts = start + rng.integers(0, DAYS * 86_400_000_000, n)
    table = pa.table(
        {
            "id": pa.array([f"evt-{i:010d}" for i in range(n)]),
            "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "value": pa.array(rng.random(n)),
            "category": pa.array(
                np.array(["click", "view", "purchase", "refund"])[rng.integers(0, 4, n)]
            ),
        }
    )
    pq.write_table(table, path)


# Each case: (setup(input, workdir) -> state, run(state) -> rows). Only `run` is timed.
def phlo_append(data: pa.Table, work: Path) -> Callable[[], int]:
    import phlo

    lh = phlo.Lakehouse.open(work / "phlo")
    lh.create_namespace("raw")
    table = lh.create_table("raw.events", data.schema, partition_by=["day(ts)"])
    return lambda: table.append(data).rows


def pyiceberg_append(data: pa.Table, work: Path) -> Callable[[], int]:
    from pyiceberg.transforms import DayTransform

    catalog = _pyiceberg_catalog(work)
    catalog.create_namespace("raw")
    table = catalog.create_table("raw.events", schema=data.schema)
    with table.update_spec() as spec:
        spec.add_field("ts", DayTransform(), "ts_day")

    def run() -> int:
        table.append(data)
        return data.num_rows

    return run


def parquet_floor(data: pa.Table, work: Path) -> Callable[[], int]:
    def run() -> int:
        pq.write_table(data, work / "floor.parquet", compression="zstd")
        return data.num_rows

    return run


def phlo_stage(data: pa.Table, work: Path) -> Callable[[], int]:
    import phlo

    return lambda: phlo.stage(data, work / "stage", run_id="bench").rows


def parquet_fair_floor(data: pa.Table, work: Path) -> Callable[[], int]:
    """pyarrow writing what staging writes: the rows with the four `_phlo_*` columns (made by
    a stage in the setup, not timed), one file, fsynced."""
    import os

    import phlo

    phlo.stage(data, work / "setup", run_id="bench")
    staged = pq.read_table(work / "setup")

    def run() -> int:
        path = work / "fair.parquet"
        pq.write_table(staged, path, compression="zstd")
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        return staged.num_rows

    return run


def _pyiceberg_catalog(work: Path):
    from pyiceberg.catalog.sql import SqlCatalog

    (work / "pyi").mkdir(exist_ok=True)
    return SqlCatalog("b", uri=f"sqlite:///{work}/pyi/c.db", warehouse=f"file://{work}/pyi")


def prepare_tables(input_path: str, work: str) -> None:
    """Writes the same data into a phlo and a PyIceberg table (run in its own process, so the
    scan cases' peak memory is the scan's alone)."""
    from pyiceberg.transforms import DayTransform

    import phlo

    data = pq.read_table(input_path)
    lh = phlo.Lakehouse.open(Path(work) / "phlo")
    lh.create_namespace("raw")
    lh.create_table("raw.events", data.schema, partition_by=["day(ts)"]).append(data)
    catalog = _pyiceberg_catalog(Path(work))
    catalog.create_namespace("raw")
    table = catalog.create_table("raw.events", schema=data.schema)
    with table.update_spec() as spec:
        spec.add_field("ts", DayTransform(), "ts_day")
    table.append(data)


DAY = dt.datetime(2024, 1, 10, tzinfo=dt.UTC)


def phlo_scan(work: Path) -> Callable[[], int]:
    import phlo

    table = phlo.Lakehouse.open(work / "phlo").table("raw.events")
    return lambda: table.scan().to_arrow().num_rows


def pyiceberg_scan(work: Path) -> Callable[[], int]:
    table = _pyiceberg_catalog(work).load_table("raw.events")
    return lambda: table.scan().to_arrow().num_rows


def phlo_scan_day(work: Path) -> Callable[[], int]:
    import phlo

    table = phlo.Lakehouse.open(work / "phlo").table("raw.events")
    end = DAY + dt.timedelta(days=1)
    return lambda: table.scan(filter=[("ts", ">=", DAY), ("ts", "<", end)]).to_arrow().num_rows


def pyiceberg_scan_day(work: Path) -> Callable[[], int]:
    from pyiceberg.expressions import And, GreaterThanOrEqual, LessThan

    table = _pyiceberg_catalog(work).load_table("raw.events")
    end = DAY + dt.timedelta(days=1)
    row_filter = And(GreaterThanOrEqual("ts", DAY.isoformat()), LessThan("ts", end.isoformat()))
    return lambda: table.scan(row_filter=row_filter).to_arrow().num_rows


CASES = {
    "append": [
        ("phlo", phlo_append),
        ("pyiceberg", pyiceberg_append),
        ("pq.write_table (floor)", parquet_floor),
    ],
    "stage": [
        ("phlo", phlo_stage),
        ("pq.write_table", parquet_floor),
        ("pq.write_table, same 8 cols", parquet_fair_floor),
    ],
    "scan all": [("phlo", phlo_scan), ("pyiceberg", pyiceberg_scan)],
    "scan one day": [("phlo", phlo_scan_day), ("pyiceberg", pyiceberg_scan_day)],
}


def _child(case: str, name: str, input_path: str, tables: str, queue: mp.Queue) -> None:
    setup = dict(CASES[case])[name]
    if case in ("append", "stage"):  # writes get the input in memory; scans read tables
        data = pq.read_table(input_path)
        with tempfile.TemporaryDirectory() as work:
            run = setup(data, Path(work))
            started = time.perf_counter()
            rows = run()
            elapsed = time.perf_counter() - started
    else:
        run = setup(Path(tables))
        started = time.perf_counter()
        rows = run()
        elapsed = time.perf_counter() - started
    queue.put((elapsed, rows, peak_rss_mb()))


def median_run(repeat: int, *args: str) -> tuple[float, int, float]:
    """Median time and the largest peak over `repeat` fresh processes."""
    runs = sorted(spawn(_child, *args) for _ in range(repeat))
    seconds, rows, _ = runs[len(runs) // 2]
    return seconds, rows, max(peak for _, _, peak in runs)


def _prepare_child(input_path: str, work: str, queue: mp.Queue) -> None:
    prepare_tables(input_path, work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the median counts")
    args = parser.parse_args()
    print(
        f"{'rows':>10}  {'case':<14} {'engine':<24} {'seconds':>8} {'peak MB':>8} {'phlo is':>10}"
    )
    for n in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            input_path = Path(tmp) / "input.parquet"
            generate(n, input_path)
            tables = Path(tmp) / "tables"
            spawn(_prepare_child, str(input_path), str(tables), result=False)
            for case, engines in CASES.items():
                results = {
                    name: median_run(args.repeat, case, name, str(input_path), str(tables))
                    for name, _ in engines
                }
                phlo_s = results["phlo"][0]
                for name, (seconds, rows, peak) in results.items():
                    ratio = "" if name == "phlo" else f"{seconds / phlo_s:.2f}x"
                    print(
                        f"{n:>10,}  {case:<14} {name:<24} {seconds:>8.3f} {peak:>8.0f} {ratio:>10}"
                    )
                    assert rows == results["phlo"][1] or name.startswith("pq"), (case, name, rows)


if __name__ == "__main__":
    main()
