"""Quality checks: `@phlo_quality` (the engine, one pass over a pruned scan) vs the original
approach (load the checked rows into pandas, run the checks in pandas) vs DuckDB SQL doing
the same checks over the same Parquet files — on one partition and on the whole table.

Table: N rows (default 5M) over 10 daily partitions (`_phlo_partition_date`): `id` int64
(unique; `--ids shuffled`, the default: a random permutation, or `--ids sorted`: rows in time
order numbered 0..N, as ids assigned at ingestion are — the uniqueness check then needs no
index, docs/quality.md), `ts` timestamptz, `value` double in [0, 100], `category` (4 values), `code`
(``C`` + digits). Checks (all pass, so every row is examined): NullCheck(id, ts),
RangeCheck(value, 0, 100), UniqueCheck(id), FreshnessCheck(ts, 240 h), CountCheck(min 1),
PatternCheck(code, ``C\\d+``), AcceptedValuesCheck(category, 4 values).

Each case runs in a fresh *spawned* process (peak memory = its `VmHWM`), 3 times; the median
is reported. The original approach (rows to pandas, the checks in pandas) is measured with two
loads: through phlo's scan (the cheapest load pandas can have), and through a SQL engine
(DuckDB `SELECT * ... WHERE partition` to `.df()`) as the original loaded through its query
engine (Trino). DuckDB SQL reads the table's Parquet data files itself (`read_parquet`,
row-group pruning on the partition column) in two queries: one aggregate for the row-level
checks and one GROUP BY for uniqueness. phlo answers what the files' metadata proves (count,
nulls, range, freshness) without reading those columns, the accepted categories from their
dictionary pages and the codes' pattern from their plain-encoded pages without decoding rows
(docs/quality.md): only `id` is scanned, while those pages are judged. The load average
is printed before and after: the machine may be shared, and its load moves every timing.

    make release && .venv/bin/python benches/bench_quality.py            # N = 5M
    .venv/bin/python benches/bench_quality.py --rows 1000000 --ids sorted
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from harness import rss_mb, spawn

CATEGORIES = ["click", "view", "purchase", "refund"]
DAYS = 10
FIRST = dt.date(2024, 1, 1)
REFERENCE = dt.datetime(2024, 1, 11, tzinfo=dt.UTC)
MAX_AGE_HOURS = 240.0


def generate(root: Path, n: int, sorted_ids: bool) -> None:
    import phlo

    rng = np.random.default_rng(7)
    day = rng.integers(0, DAYS, n)
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    micros = day * 86_400_000_000 + rng.integers(0, 86_400_000_000, n)
    ids = rng.permutation(n).astype(np.int64)
    if sorted_ids:
        # Rows in time order, numbered as they arrive.
        micros = np.sort(micros)
        day = micros // 86_400_000_000
        ids = np.arange(n, dtype=np.int64)
    table = pa.table(
        {
            "id": pa.array(ids),
            "ts": pa.array(start + micros, pa.timestamp("us", tz="UTC")),
            "value": pa.array(rng.random(n) * 100),
            "category": pa.array(np.array(CATEGORIES)[rng.integers(0, 4, n)]),
            "code": pa.array(np.char.add("C", rng.integers(0, 100_000, n).astype(str))),
            "_phlo_partition_date": pa.array(
                (np.datetime64(FIRST.isoformat(), "D") + day).astype("datetime64[D]"), pa.date32()
            ),
        }
    )
    lh = phlo.Lakehouse.open(root)
    lh.create_namespace("raw")
    events = lh.create_table("raw.events", table.schema, partition_by=["_phlo_partition_date"])
    events.append(table)


def phlo_case(root: str, partition: str | None, queue: Any) -> None:
    import phlo
    from phlo.quality import (
        AcceptedValuesCheck,
        CountCheck,
        FreshnessCheck,
        NullCheck,
        PatternCheck,
        RangeCheck,
        UniqueCheck,
        phlo_quality,
    )

    lh = phlo.Lakehouse.open(root)

    @phlo_quality(
        table="raw.events",
        checks=[
            NullCheck(["id", "ts"]),
            RangeCheck("value", 0, 100),
            UniqueCheck(["id"]),
            FreshnessCheck("ts", MAX_AGE_HOURS, reference_time=REFERENCE),
            CountCheck(min_rows=1),
            PatternCheck("code", r"C\d+"),
            AcceptedValuesCheck("category", CATEGORIES),
        ],
    )
    def events_quality() -> None: ...

    began = time.perf_counter()
    results = events_quality.run(partition, lakehouse=lh)
    elapsed = time.perf_counter() - began
    assert all(r.passed for r in results), [r for r in results if not r.passed]
    queue.put((elapsed, rss_mb(), results[0].total_count))


def pandas_checks(df: Any) -> bool:
    """Each check as the original's pandas code does it."""
    import pandas as pd

    ok = True
    for column in ("id", "ts"):
        ok &= df[column].isna().sum() / max(len(df), 1) <= 0
    value = df["value"].dropna()
    ok &= int(((value < 0) | (value > 100)).sum()) == 0
    ok &= int(df.duplicated(subset=["id"], keep=False).sum()) == 0
    newest = pd.to_datetime(df["ts"]).max()
    ok &= (REFERENCE - newest).total_seconds() / 3600 <= MAX_AGE_HOURS
    ok &= len(df) >= 1
    codes = df["code"].dropna().astype(str)
    ok &= int((~codes.str.match(r"C\d+", na=False)).sum()) == 0
    ok &= int((~df["category"].dropna().isin(CATEGORIES)).sum()) == 0
    return bool(ok)


def pandas_case(root: str, partition: str | None, queue: Any) -> None:
    """The original approach, rows loaded through phlo's scan (the cheapest load)."""
    import phlo

    lh = phlo.Lakehouse.open(root)
    began = time.perf_counter()
    scope = [("_phlo_partition_date", "=", dt.date.fromisoformat(partition))] if partition else None
    df = lh.table("raw.events").scan(filter=scope).to_pandas()
    ok = pandas_checks(df)
    elapsed = time.perf_counter() - began
    assert ok
    queue.put((elapsed, rss_mb(), len(df)))


def pandas_sql_case(root: str, partition: str | None, queue: Any) -> None:
    """The original approach with the original's load path: the rows through a SQL engine
    (the original used Trino; here DuckDB over the same Parquet files) into pandas."""
    import duckdb

    con = duckdb.connect()
    began = time.perf_counter()
    files = f"{root}/warehouse/**/*.parquet"
    where = f"_phlo_partition_date = DATE '{partition}'" if partition else "TRUE"
    df = con.sql(f"SELECT * FROM read_parquet('{files}') WHERE {where}").df()
    ok = pandas_checks(df)
    elapsed = time.perf_counter() - began
    assert ok
    queue.put((elapsed, rss_mb(), len(df)))


def duckdb_case(root: str, partition: str | None, queue: Any) -> None:
    import duckdb

    files = f"{root}/warehouse/**/*.parquet"
    where = f"_phlo_partition_date = DATE '{partition}'" if partition else "TRUE"
    cutoff = (REFERENCE - dt.timedelta(hours=MAX_AGE_HOURS)).isoformat(sep=" ")
    listed = ", ".join(f"'{c}'" for c in CATEGORIES)
    con = duckdb.connect()
    began = time.perf_counter()
    con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{files}')")
    ((rows, nulls, out_of_range, newest_ok, bad_codes, bad_categories),) = con.sql(
        f"""SELECT count(*),
                count(*) FILTER (WHERE id IS NULL) + count(*) FILTER (WHERE ts IS NULL),
                count(*) FILTER (WHERE value < 0 OR value > 100),
                max(ts) >= TIMESTAMPTZ '{cutoff}',
                count(*) FILTER (WHERE code IS NOT NULL AND NOT regexp_matches(code, '^(?:C\\d+)')),
                count(*) FILTER (WHERE category IS NOT NULL AND category NOT IN ({listed}))
            FROM events WHERE {where}"""
    ).fetchall()
    ((duplicated,),) = con.sql(
        f"""SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM events WHERE {where}
            GROUP BY id HAVING count(*) > 1)"""
    ).fetchall()
    elapsed = time.perf_counter() - began
    assert rows and not (nulls or out_of_range or bad_codes or bad_categories or duplicated)
    assert newest_ok
    queue.put((elapsed, rss_mb(), rows))


def measure(case: Any, root: str, partition: str | None, runs: int) -> tuple[float, float, int]:
    results = [spawn(case, root, partition) for _ in range(runs)]
    rows = {r[2] for r in results}
    assert len(rows) == 1
    return statistics.median(r[0] for r in results), max(r[1] for r in results), rows.pop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ids", choices=["shuffled", "sorted"], default="shuffled")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        spawn(_generate, str(root), args.rows, args.ids == "sorted", result=False)
        print(f"{args.rows:,} rows ({args.ids} ids), {DAYS} partitions, median of {args.runs} runs")
        print(f"load average (1, 5, 15 min): {_load()}\n")
        print(
            "| scope | rows checked | phlo s | pandas (phlo load) s | pandas (SQL load) s "
            "| DuckDB SQL s | vs pandas (phlo load) | vs pandas (SQL load) | vs DuckDB SQL "
            "| phlo MB | pandas (phlo load) MB | pandas (SQL load) MB | DuckDB SQL MB |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for label, partition in (("one partition", "2024-01-05"), ("full table", None)):
            ours = measure(phlo_case, str(root), partition, args.runs)
            pandas = measure(pandas_case, str(root), partition, args.runs)
            sql = measure(pandas_sql_case, str(root), partition, args.runs)
            duck = measure(duckdb_case, str(root), partition, args.runs)
            assert ours[2] == pandas[2] == sql[2] == duck[2]
            print(
                f"| {label} | {ours[2]:,} | {ours[0]:.3f} | {pandas[0]:.3f} | {sql[0]:.3f} "
                f"| {duck[0]:.3f} | {pandas[0] / ours[0]:.1f}x | {sql[0] / ours[0]:.1f}x "
                f"| {duck[0] / ours[0]:.2f}x | {ours[1]:.0f} | {pandas[1]:.0f} | {sql[1]:.0f} "
                f"| {duck[1]:.0f} |"
            )
        print(f"\nload average (1, 5, 15 min): {_load()}")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _generate(root: str, rows: int, sorted_ids: bool, _queue: Any) -> None:
    generate(Path(root), rows, sorted_ids)


if __name__ == "__main__":
    main()
