"""Merge (upsert) on object storage: phlo on S3 (SeaweedFS on 127.0.0.1) vs phlo on local disk,
and vs PyIceberg's upsert on the same S3 server — same data as bench_merge.py (N events, a batch
of N/10 rows, half updates and half new ids), same run, ratios printed.

For every case a fresh process builds the base table (not timed), then another fresh spawned
process runs only the merge. The catalog is SQLite in every case; only the warehouse moves.

    make release && .venv/bin/python benches/bench_s3.py --rows 1000000

`--count-requests` then runs each S3 merge once more through a counting proxy in front of the
server (tests/s3_requests.py) and prints the requests it made by method and kind of object
(timed runs go direct).
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from bench_merge import generate
from harness import peak_rss_mb, spawn

# The test suite's SeaweedFS launcher (free ports on 127.0.0.1, killed at the end) and counting proxy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from s3_requests import counting_proxy
from seaweedfs_server import S3Server, running_server


def _open_phlo(work: Path, warehouse: str, endpoint: str):
    import phlo

    if not warehouse:
        return phlo.Lakehouse.open(work)
    return phlo.Lakehouse.connect(
        f"sqlite:///{work}/catalog.db", warehouse, S3Server(endpoint).properties()
    )


def _pyiceberg(work: Path, warehouse: str, endpoint: str):
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog(
        "bench",
        uri=f"sqlite:///{work}/c.db",
        warehouse=warehouse,
        **S3Server(endpoint).properties(),
    )


def build_phlo(data: Path, work: Path, warehouse: str, endpoint: str) -> None:
    lh = _open_phlo(work, warehouse, endpoint)
    lh.create_namespace("raw")
    base = pq.read_table(data / "base.parquet")
    lh.create_table("raw.events", base.schema).append(base)


def build_pyiceberg(data: Path, work: Path, warehouse: str, endpoint: str) -> None:
    catalog = _pyiceberg(work, warehouse, endpoint)
    catalog.create_namespace("raw")
    base = pq.read_table(data / "base.parquet")
    catalog.create_table("raw.events", schema=base.schema).append(base)


def phlo_merge(work: Path, warehouse: str, endpoint: str) -> Callable[..., object]:
    return _open_phlo(work, warehouse, endpoint).table("raw.events").merge


def pyiceberg_upsert(work: Path, warehouse: str, endpoint: str) -> Callable[..., object]:
    table = _pyiceberg(work, warehouse, endpoint).load_table("raw.events")
    return lambda batch, _key: table.upsert(batch, join_cols=["id"])


#: name → (builder, merge, on S3)
CASES = {
    "phlo, local disk": (build_phlo, phlo_merge, False),
    "phlo, S3": (build_phlo, phlo_merge, True),
    "pyiceberg upsert, S3": (build_pyiceberg, pyiceberg_upsert, True),
}


def _build_child(name: str, data: str, work: str, warehouse: str, endpoint: str, queue) -> None:
    CASES[name][0](Path(data), Path(work), warehouse, endpoint)
    queue.put(None)


def _merge_child(name: str, data: str, work: str, warehouse: str, endpoint: str, queue) -> None:
    batch = pq.read_table(Path(data) / "batch.parquet")
    merge = CASES[name][1](Path(work), warehouse, endpoint)
    started = time.perf_counter()
    merge(batch, "id")
    queue.put((time.perf_counter() - started, peak_rss_mb()))


def _merge_requests(name: str, data: Path, tmp: Path, endpoint: str) -> collections.Counter:
    """The S3 requests one merge of case `name` makes (on a base table built direct)."""
    work = tmp / uuid.uuid4().hex
    work.mkdir()
    warehouse = f"s3://warehouse/{work.name}"
    spawn(_build_child, name, str(data), str(work), warehouse, endpoint)
    with counting_proxy(endpoint) as (proxied, requests):
        spawn(_merge_child, name, str(data), str(work), warehouse, proxied)
    return requests.counts()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--count-requests", action="store_true")
    args = parser.parse_args()
    print(f"{'rows':>10}  {'engine':<24} {'seconds':>9} {'peak MB':>8} {'vs phlo local':>14}")
    with running_server() as server, tempfile.TemporaryDirectory() as tmp:
        for n in args.rows:
            data = Path(tmp) / f"data{n}"
            data.mkdir()
            generate(n, data)
            results = {}
            for name, (_, _, on_s3) in CASES.items():
                work = Path(tmp) / uuid.uuid4().hex
                work.mkdir()
                warehouse = f"s3://warehouse/{work.name}" if on_s3 else ""
                spawn(_build_child, name, str(data), str(work), warehouse, server.endpoint)
                results[name] = spawn(
                    _merge_child, name, str(data), str(work), warehouse, server.endpoint
                )
            local = results["phlo, local disk"][0]
            for name, (seconds, peak) in results.items():
                print(
                    f"{n:>10,}  {name:<24} {seconds:>9.3f} {peak:>8.0f} {seconds / local:>13.1f}x",
                    flush=True,
                )
            if not args.count_requests:
                continue
            for name in (name for name, case in CASES.items() if case[2]):
                counts = _merge_requests(name, data, Path(tmp), server.endpoint)
                listed = ", ".join(f"{m} {k}: {c}" for (m, k), c in sorted(counts.items()))
                print(f"{n:>10,}  {name}: {sum(counts.values())} requests ({listed})", flush=True)


if __name__ == "__main__":
    main()
