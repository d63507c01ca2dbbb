"""Load-table latency through `phlo catalog serve` vs loading the table in process.

One table with `--snapshots` appends (its metadata grows with each) is written once, then the
server runs as its own process (`phlo catalog serve --port 0`). Each case loads the table
`--requests` times after 20 warm-up loads and reports p50 / p99 / mean in milliseconds:

- phlo in process: `lh.table(name)` (reads the catalog pointer and the metadata file);
- HTTP `GET …/tables/{t}` on one kept-alive connection (the server's own latency: routing,
  catalog read, metadata read, JSON), no client-side parsing;
- PyIceberg `RestCatalog.load_table` through the server (adds PyIceberg's parsing);
- PyIceberg `SqlCatalog.load_table` on the same catalog file (no server at all).

    .venv/bin/python benches/bench_rest.py --snapshots 50 --requests 500
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

WARMUP = 20


def generate(root: Path, snapshots: int) -> None:
    import phlo

    lh = phlo.Lakehouse.open(root)
    lh.create_namespace("raw")
    table = lh.create_table("raw.events", {"id": pa.int64(), "city": pa.string()})
    for i in range(snapshots):
        table.append(pa.table({"id": [i], "city": [f"c{i}"]}, schema=table.schema))


def measure(load: Callable[[], object], n: int) -> list[float]:
    for _ in range(WARMUP):
        load()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        load()
        times.append((time.perf_counter() - start) * 1000)
    return times


def report(name: str, times: list[float]) -> None:
    ordered = sorted(times)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{name:<44} {p50:8.2f} {p99:8.2f} {statistics.fmean(ordered):8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--snapshots", type=int, default=50)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()

    from pyiceberg.catalog.rest import RestCatalog
    from pyiceberg.catalog.sql import SqlCatalog

    import phlo

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate(root, args.snapshots)
        lh = phlo.Lakehouse.open(root)
        serve = "from phlo.cli import main; main()"
        command = [sys.executable, "-c", serve, "--root", tmp, "catalog", "serve", "--port", "0"]
        server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert server.stdout is not None
        try:
            uri = next(line.split()[-1] for line in server.stdout if "main:" in line)
            host, port = uri.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port))
            path = "/v1/main/namespaces/raw/tables/events"

            def http_get() -> bytes:
                connection.request("GET", path)
                response = connection.getresponse()
                body = response.read()
                assert response.status == 200, body
                return body

            size_kb = len(http_get()) / 1024
            rest = RestCatalog("phlo", uri=uri)
            sql = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
            print(
                f"load table raw.events: {args.snapshots} snapshots, LoadTableResult "
                f"{size_kb:.0f} KiB; {args.requests} loads each after {WARMUP} warm-up"
            )
            print(f"{'case':<44} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
            cases: list[tuple[str, Callable[[], object]]] = [
                ("phlo in process: lh.table()", lambda: lh.table("raw.events")),
                ("HTTP GET through the server (keep-alive)", http_get),
                (
                    "PyIceberg RestCatalog.load_table (server)",
                    lambda: rest.load_table("raw.events"),
                ),
                (
                    "PyIceberg SqlCatalog.load_table (no server)",
                    lambda: sql.load_table("raw.events"),
                ),
            ]
            for name, load in cases:
                report(name, measure(load, args.requests))
            connection.close()
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
