"""`lh.sql` vs DuckDB reading the same Parquet files directly, and vs handing DuckDB phlo's
Arrow scan (the alternative design: no pushdown into the stream).

One table of N rows (4 columns, partitioned by day over 30 days) is written once. Each case
runs in a fresh spawned process: the aggregate query once to warm up (imports, OS cache), then
`--repeat` times; the median is reported, with the first run and peak RSS.

    .venv/bin/python benches/bench_sql.py --rows 5000000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from harness import peak_rss_mb, spawn

DAYS = 30
QUERY = "SELECT category, count(*), avg(value), max(ts) FROM {t} GROUP BY 1 ORDER BY 1"


def generate(root: Path, n: int) -> None:
    import phlo

    rng = np.random.default_rng(42)
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    table = pa.table(
        {
            "id": pa.array(np.arange(n)),
            "ts": pa.array(
                start + rng.integers(0, DAYS * 86_400_000_000, n), pa.timestamp("us", "UTC")
            ),
            "value": rng.random(n),
            "category": pa.array(
                np.array(["click", "view", "purchase", "refund"])[rng.integers(0, 4, n)]
            ),
        }
    )
    lh = phlo.Lakehouse.open(root)
    lh.create_namespace("raw")
    lh.create_table("raw.events", table.schema, partition_by=["day(ts)"]).append(table)


def lh_sql(root: Path) -> Callable[[], Any]:
    import phlo

    lh = phlo.Lakehouse.open(root)
    return lambda: lh.sql(QUERY.format(t="raw.events")).fetchall()


def duckdb_direct(root: Path) -> Callable[[], Any]:
    import duckdb

    files = sorted(str(p) for p in (root / "warehouse").rglob("*.parquet"))
    con = duckdb.connect()
    query = QUERY.format(t="read_parquet($files)")
    return lambda: con.execute(query, {"files": files}).fetchall()


def duckdb_direct_fresh(root: Path) -> Callable[[], Any]:
    """As `duckdb_direct`, with a new in-memory DuckDB per query (what `lh.sql` did before
    its queries shared one database)."""
    import duckdb

    files = sorted(str(p) for p in (root / "warehouse").rglob("*.parquet"))
    query = QUERY.format(t="read_parquet($files)")
    return lambda: duckdb.connect().execute(query, {"files": files}).fetchall()


def arrow_scan(root: Path) -> Callable[[], Any]:
    import duckdb

    import phlo

    lh = phlo.Lakehouse.open(root)
    con = duckdb.connect()

    def run() -> Any:
        scan = lh.table("raw.events").scan(columns=["category", "value", "ts"])
        con.register("events", scan)
        return con.sql(QUERY.format(t="events")).fetchall()

    return run


CASES = {
    "lh.sql": lh_sql,
    "duckdb read_parquet": duckdb_direct,
    "duckdb, new connection": duckdb_direct_fresh,
    "phlo Arrow scan": arrow_scan,
}


def measure(case: str, root: Path, repeat: int, queue: Any) -> None:
    run = CASES[case](root)
    started = time.perf_counter()
    result = run()
    first = time.perf_counter() - started
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    queue.put((statistics.median(times), first, peak_rss_mb(), len(result)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lh"
        spawn(_generate, root, args.rows, result=False)
        results = {case: spawn(measure, case, root, args.repeat) for case in CASES}
    floor = results["duckdb read_parquet"][0]
    print(f"{args.rows:,} rows; median of {args.repeat} after one warm-up run")
    print(f"{'case':<22}{'median s':>10}{'first s':>10}{'peak MB':>10}{'vs direct':>11}")
    for case, (median, first, peak, _) in results.items():
        print(f"{case:<22}{median:>10.3f}{first:>10.3f}{peak:>10.0f}{median / floor:>10.2f}x")


def _generate(root: Path, n: int, _queue: Any) -> None:
    generate(root, n)


if __name__ == "__main__":
    main()
