"""Publishing a lakehouse table to PostgreSQL: phlo vs the original approach vs `psql \\copy`.

- phlo: `publish_marts_to_postgres` (DuckDB reads the table's Parquet files, Arrow batches go
  to PostgreSQL by binary COPY through ADBC into a new table, swapped in in one transaction).
- original: DROP + CREATE + INSERT of 1,000-row batches with psycopg `executemany` (what the
  seed's publishing did after querying Trino; the query is not timed here). It is run on a
  subset (`--original-rows`) and extrapolated linearly to N rows; the table says so.
- floor: `psql \\copy` of a CSV file of the same rows into an empty table (the file is written
  before timing).
- psycopg binary COPY (`write_row` per row), the other loading path considered for phlo.

Libraries are imported before timing in every case; connecting is timed in every case.
A PostgreSQL server is started for the run (tests/postgres_server.py), or `--url` is used.
Each case runs in a fresh spawned process; peak RSS is the process's own.

    .venv/bin/python benches/bench_publish.py --rows 5000000
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from harness import peak_rss_mb, spawn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

COLUMNS = "(id bigint, ts timestamptz, value double precision, category text, amount numeric(12,2))"


def generate(root: Path, n: int, csv: Path, _queue: Any) -> None:
    import pyarrow.csv as pacsv

    import phlo

    rng = np.random.default_rng(7)
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    table = pa.table(
        {
            "id": pa.array(np.arange(n)),
            "ts": pa.array(
                start + rng.integers(0, 30 * 86_400_000_000, n), pa.timestamp("us", "UTC")
            ),
            "value": rng.random(n),
            "category": pa.array(
                np.array(["click", "view", "purchase", "refund"])[rng.integers(0, 4, n)]
            ),
            "amount": pa.array(rng.integers(0, 10_000_000, n) / 100).cast(pa.decimal128(12, 2)),
        }
    )
    lh = phlo.Lakehouse.open(root)
    lh.create_namespace("marts")
    lh.create_table("marts.mrt_events", table.schema).append(table)
    pacsv.write_csv(table, csv, pacsv.WriteOptions(include_header=False))


def phlo_publish(root: Path, url: str, _rows: int, _csv: Path) -> Callable[[], int]:
    # Imported before timing, as every case's libraries are (phlo imports these lazily).
    import adbc_driver_postgresql.dbapi  # noqa: F401
    import duckdb  # noqa: F401
    import pyiceberg.table  # noqa: F401

    import phlo
    from phlo.publishing import publish_marts_to_postgres

    lh = phlo.Lakehouse.open(root)

    def run() -> int:
        result = publish_marts_to_postgres(
            None, {"events": "marts.mrt_events"}, lakehouse=lh, connection=url
        )
        return result["events"].rows

    return run


def original(root: Path, url: str, rows: int, _csv: Path) -> Callable[[], int]:
    import psycopg

    import phlo

    data = phlo.Lakehouse.open(root).table("marts.mrt_events").scan().to_arrow().slice(0, rows)
    tuples = list(zip(*(c.to_pylist() for c in data.columns), strict=True))

    def run() -> int:
        with psycopg.connect(url) as con:
            con.execute("DROP TABLE IF EXISTS marts.events_original")
            con.execute(f"CREATE TABLE marts.events_original {COLUMNS}")
            con.commit()
            with con.cursor() as cur:
                for i in range(0, len(tuples), 1000):
                    cur.executemany(
                        "INSERT INTO marts.events_original VALUES (%s, %s, %s, %s, %s)",
                        tuples[i : i + 1000],
                    )
                    con.commit()
        return len(tuples)

    return run


def psql_copy(_root: Path, url: str, _rows: int, csv: Path) -> Callable[[], int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS marts.events_floor")
        con.execute(f"CREATE TABLE marts.events_floor {COLUMNS}")

    def run() -> int:
        command = f"\\copy marts.events_floor FROM '{csv}' (FORMAT csv)"
        subprocess.run(["psql", url, "-qc", command], check=True, capture_output=True)
        return -1  # psql does not say

    return run


def psycopg_binary_copy(root: Path, url: str, _rows: int, _csv: Path) -> Callable[[], int]:
    import psycopg

    import phlo

    table = phlo.Lakehouse.open(root).table("marts.mrt_events")

    def run() -> int:
        n = 0
        with psycopg.connect(url) as con:
            con.execute("DROP TABLE IF EXISTS marts.events_binary")
            con.execute(f"CREATE TABLE marts.events_binary {COLUMNS}")
            copy = "COPY marts.events_binary FROM STDIN (FORMAT BINARY)"
            with con.cursor().copy(copy) as cp:
                cp.set_types(["int8", "timestamptz", "float8", "text", "numeric"])
                for batch in table.scan().to_batches():
                    for row in zip(*(c.to_pylist() for c in batch.columns), strict=True):
                        cp.write_row(row)
                        n += 1
        return n

    return run


CASES: dict[str, Callable[..., Callable[[], int]]] = {
    "phlo publish (ADBC binary COPY + swap)": phlo_publish,
    "psql \\copy CSV (floor)": psql_copy,
    "psycopg binary COPY write_row": psycopg_binary_copy,
    "original: DROP+CREATE+executemany 1000": original,
}


def measure(case: str, root: Path, url: str, rows: int, csv: Path, queue: Any) -> None:
    run = CASES[case](root, url, rows, csv)
    started = time.perf_counter()
    run()
    queue.put((time.perf_counter() - started, peak_rss_mb()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--original-rows", type=int, default=200_000)
    parser.add_argument(
        "--skip", action="append", default=[], help="Leave out cases whose name contains this."
    )
    parser.add_argument("--url", help="A PostgreSQL server to use instead of starting one.")
    args = parser.parse_args()
    from postgres_server import running_server

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(running_server())
        import psycopg

        with psycopg.connect(url, autocommit=True) as con:
            con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        root, csv = Path(tmp) / "lh", Path(tmp) / "events.csv"
        spawn(generate, root, args.rows, csv, result=False)
        results = {}
        for case in CASES:
            if any(s in case for s in args.skip):
                continue
            rows = args.original_rows if case.startswith("original") else args.rows
            seconds, peak = spawn(measure, case, root, url, rows, csv)
            results[case] = (seconds * args.rows / rows, peak, rows)
    floor = results["psql \\copy CSV (floor)"][0]
    phlo_s = results["phlo publish (ADBC binary COPY + swap)"][0]
    print(
        f"{args.rows:,} rows (id bigint, ts timestamptz, value double, category text, amount numeric(12,2))"
    )
    print(f"{'case':<42}{'seconds':>10}{'peak MB':>9}{'vs floor':>10}{'phlo faster':>13}")
    for case, (seconds, peak, rows) in results.items():
        note = f"  (measured on {rows:,} rows, extrapolated)" if rows != args.rows else ""
        print(
            f"{case:<42}{seconds:>10.2f}{peak:>9.0f}{seconds / floor:>9.2f}x"
            f"{seconds / phlo_s:>12.1f}x{note}"
        )


if __name__ == "__main__":
    main()
