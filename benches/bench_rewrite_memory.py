"""Peak memory of rewriting one large data file: compaction, a delete of a few rows, a full scan.

One table of 2M events (`id` string key, `ts`, `value`, `category`, a 32-character `note`) in
one data file of 16 row groups (appended, then compacted into one file). Each measured
operation runs in a fresh spawned process; the numbers are its peak resident memory
(`VmHWM`) and how far that rose above the memory the process held before the operation.
Engine reads stream a file row group by row group, so the rise should stay well below the
file's size.

    make release
    .venv/bin/python benches/bench_rewrite_memory.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from harness import peak_rss_mb, rss_mb, spawn

ROWS = 2_000_000
TABLE = "raw.events"


def events(start: int, n: int) -> pa.Table:
    rng = np.random.default_rng(start)
    ids = np.arange(start, start + n)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz012345", dtype="S1")
    notes = rng.choice(letters, size=(n, 32)).view("S32").ravel().astype(str)
    return pa.table(
        {
            "id": pa.array([f"evt-{i:010d}" for i in ids]),
            "ts": pa.array(ids * 1_000_000, pa.timestamp("us", tz="UTC")),
            "value": pa.array(rng.random(n)),
            "category": pa.array(np.array(["click", "view", "purchase", "refund"])[ids % 4]),
            "note": pa.array(notes),
        }
    )


def build(root: str, queue: Any) -> None:
    import phlo

    lh = phlo.Lakehouse.open(root)
    lh.create_namespace("raw")
    table = lh.create_table(TABLE, events(0, 1).schema)
    for start in range(0, ROWS, 500_000):
        table.append(events(start, 500_000))
    table.compact(target_file_size=1 << 30)
    files = table.scan().data_files
    assert len(files) == 1, files
    table.append(events(ROWS, 10))  # a small file for the compaction to join
    queue.put(Path(files[0].removeprefix("file://")).stat().st_size)


def measure(root: str, what: str, queue: Any) -> None:
    import phlo

    lh = phlo.Lakehouse.open(root)
    table = lh.table(TABLE)
    before = rss_mb("VmRSS:")
    if what == "compact":
        result = table.compact(target_file_size=1 << 30)
        assert result.files_rewritten == 2, result
    elif what == "delete":
        result = table.delete(("id", "<", "evt-0000001000"))
        assert result.rows_deleted == 1000, result
    else:
        rows = sum(b.num_rows for b in table.scan().to_batches())
        assert rows > ROWS - 1000, rows
    peak = peak_rss_mb()
    queue.put((peak, peak - before))


def main() -> None:
    with tempfile.TemporaryDirectory() as root:
        size = spawn(build, root)
        print(f"one data file of {ROWS:,} rows: {size / 2**20:.0f} MB")
        for what in ["scan", "compact", "delete"]:
            peak, rise = spawn(measure, root, what)
            print(f"{what:8} peak RSS {peak:7.0f} MB   rise during the operation {rise:7.0f} MB")


if __name__ == "__main__":
    main()
