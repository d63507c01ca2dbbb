"""Position deletes over a file whose ids are DELTA_BINARY_PACKED in pyarrow's miniblocks (as
`column_encoding='DELTA_BINARY_PACKED'` writes them): a full scan of the table, side by side
for several builds of phlo (each a `python/` folder holding its `_native` extension, e.g. a copy
of main's next to this tree's), alternating, each scan in a fresh process, best of `--runs`.

The file: `--rows` rows (id DELTA_BINARY_PACKED, a group number, a double), row groups of 1 Mi
rows, added by PyIceberg's `add_files`; then phlo deletes 80 % of the rows merge-on-read, in
runs of 1,000 rows (position deletes the Parquet reader can skip, or must decode and drop).

    make release && cp -r python /tmp/mine && .venv/bin/python benches/bench_delta_deletes.py \\
        --builds /tmp/main-python /tmp/mine
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SCAN = """
import sys, time
import phlo
table = phlo.Lakehouse.open(sys.argv[1]).table("raw.t")
start = time.perf_counter()
rows = table.scan().to_arrow().num_rows
print(time.perf_counter() - start, rows)
"""


def build(work: Path, rows: int) -> None:
    from pyiceberg.catalog.sql import SqlCatalog

    import phlo

    ids = np.arange(rows, dtype=np.int64)
    data = pa.table({"id": ids, "g": (ids // 1000) % 5, "v": np.random.default_rng(1).random(rows)})
    path = work / "delta.parquet"
    pq.write_table(
        data,
        path,
        use_dictionary=False,
        column_encoding={"id": "DELTA_BINARY_PACKED"},
        row_group_size=1 << 20,
    )
    lh = phlo.Lakehouse.open(work / "lake")
    lh.create_namespace("raw")
    catalog = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
    catalog.create_table("raw.t", schema=data.schema).add_files([str(path)])
    catalog.engine.dispose()
    deleted = lh.table("raw.t").delete(("g", "!=", 0), write_mode="merge-on-read").rows_deleted
    print(f"{rows:,} rows, {deleted:,} deleted by position", flush=True)


def scan(python: Path, work: Path) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(python)}
    out = subprocess.run(
        [sys.executable, "-c", SCAN, str(work / "lake")],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return float(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--builds", type=Path, nargs="+", required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        build(work, args.rows)
        best: dict[Path, float] = {}
        for _ in range(args.runs):
            for python in args.builds:
                seconds, kept = scan(python, work)
                best[python] = min(best.get(python, seconds), seconds)
        for python, seconds in best.items():
            print(f"{python}: full scan best of {args.runs}: {seconds:.3f} s ({kept:,} rows)")


if __name__ == "__main__":
    main()
