"""Merge (upsert) and dedupe: phlo vs PyIceberg upsert, the original framework's algorithm,
a hand-written polars merge, and delta-rs merge — same data, same run, ratios printed.

Data: a table of N events (`id` string key, `ts` timestamptz, `value` double, `category`
string) and a batch of N/10 rows, half updates of existing ids and half new ids. For every
measured case a fresh process builds the base table (not timed), then another fresh *spawned*
process runs only the merge; its peak RSS (`VmHWM`) and CPU time (all threads, user + system:
steadier than wall time on a shared machine) are reported.

    make bench-merge                                     # release build, N = 1M and 5M
    .venv/bin/python benches/bench_merge.py --rows 1000000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from harness import peak_rss_mb, spawn

SLOW_PEER_MAX_ROWS = 1_000_000  # the original algorithm needs ~20 min at 5M on this machine


def generate(n: int, folder: Path) -> None:
    rng = np.random.default_rng(7)
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)

    def events(ids: np.ndarray) -> pa.Table:
        k = len(ids)
        return pa.table(
            {
                "id": pa.array([f"evt-{i:010d}" for i in ids]),
                "ts": pa.array(
                    start + rng.integers(0, 30 * 86_400_000_000, k), pa.timestamp("us", tz="UTC")
                ),
                "value": pa.array(rng.random(k)),
                "category": pa.array(
                    np.array(["click", "view", "purchase", "refund"])[rng.integers(0, 4, k)]
                ),
            }
        )

    pq.write_table(events(np.arange(n)), folder / "base.parquet")
    batch = n // 10
    updates = rng.choice(n, batch // 2, replace=False)
    inserts = np.arange(n, n + batch - batch // 2)
    pq.write_table(events(np.concatenate([updates, inserts])), folder / "batch.parquet")


def _catalog(work: Path):
    from pyiceberg.catalog.sql import SqlCatalog

    return SqlCatalog("bench", uri=f"sqlite:///{work}/c.db", warehouse=f"file://{work}")


# --- base tables (built in their own process, not timed) ---------------------------------


def build_phlo(data: Path, work: Path) -> None:
    import phlo

    lh = phlo.Lakehouse.open(work)
    lh.create_namespace("raw")
    base = pq.read_table(data / "base.parquet")
    lh.create_table("raw.events", base.schema).append(base)


def build_pyiceberg(data: Path, work: Path) -> None:
    catalog = _catalog(work)
    catalog.create_namespace("raw")
    base = pq.read_table(data / "base.parquet")
    catalog.create_table("raw.events", schema=base.schema).append(base)


def build_delta(data: Path, work: Path) -> None:
    from deltalake import write_deltalake

    write_deltalake(str(work / "delta"), pq.read_table(data / "base.parquet"))


# --- measured merges: setup (untimed) returns the timed call ------------------------------


def phlo_merge(batch: pa.Table, work: Path) -> Callable[[], None]:
    import phlo

    table = phlo.Lakehouse.open(work).table("raw.events")
    return lambda: table.merge(batch, "id")


def pyiceberg_upsert(batch: pa.Table, work: Path) -> Callable[[], None]:
    table = _catalog(work).load_table("raw.events")
    return lambda: table.upsert(batch, join_cols=["id"])


def original_algorithm(batch: pa.Table, work: Path) -> Callable[[], None]:
    """The original framework: delete the batch's keys 1,000 at a time, then append (not atomic)."""
    from pyiceberg.expressions import In

    table = _catalog(work).load_table("raw.events")
    keys = batch.column("id").to_pylist()

    def run() -> None:
        for start in range(0, len(keys), 1000):
            table.delete(In("id", keys[start : start + 1000]))
        table.append(batch)

    return run


def polars_merge(batch: pa.Table, work: Path) -> Callable[[], None]:
    import polars as pl

    table = _catalog(work).load_table("raw.events")

    def run() -> None:
        current = pl.from_arrow(table.scan().to_arrow())
        new = pl.from_arrow(batch)
        merged = pl.concat([current.join(new.select("id"), on="id", how="anti"), new])
        table.overwrite(merged.to_arrow())

    return run


def delta_merge(batch: pa.Table, work: Path) -> Callable[[], None]:
    from deltalake import DeltaTable

    table = DeltaTable(str(work / "delta"))
    return lambda: (
        table.merge(source=batch, predicate="t.id = s.id", source_alias="s", target_alias="t")
        .when_matched_update_all()
        .when_not_matched_insert_all()
        .execute()
    )


def phlo_dedupe(data: pa.Table, _: Path) -> Callable[[], None]:
    import phlo

    return lambda: phlo.dedupe(data, "id", "last")


def polars_dedupe(data: pa.Table, _: Path) -> Callable[[], None]:
    import polars as pl

    frame = pl.from_arrow(data)
    return lambda: frame.unique(subset=["id"], keep="last", maintain_order=True)


MERGES = {
    "phlo": (build_phlo, phlo_merge),
    "delta-rs merge": (build_delta, delta_merge),
    "polars anti-join + overwrite": (build_pyiceberg, polars_merge),
    "pyiceberg upsert": (build_pyiceberg, pyiceberg_upsert),
    "original (delete 1k keys + append)": (build_pyiceberg, original_algorithm),
}
DEDUPES = {"phlo": phlo_dedupe, "polars unique(keep=last)": polars_dedupe}


def _build_child(name: str, data: str, work: str, queue: mp.Queue) -> None:
    MERGES[name][0](Path(data), Path(work))
    queue.put(None)


def _merge_child(name: str, data: str, work: str, queue: mp.Queue) -> None:
    batch = pq.read_table(Path(data) / "batch.parquet")
    run = MERGES[name][1](batch, Path(work))
    queue.put(timed(run))


def _dedupe_child(name: str, data: str, work: str, queue: mp.Queue) -> None:
    # The base plus the batch: N + N/10 rows where N/20 keys repeat.
    both = pa.concat_tables(
        [pq.read_table(Path(data) / f) for f in ("base.parquet", "batch.parquet")]
    )
    run = DEDUPES[name](both.combine_chunks(), Path(work))
    queue.put(timed(run))


def timed(run: Callable[[], object]) -> tuple[float, float, float]:
    """Wall seconds, peak MB and CPU seconds of `run()` in this process."""
    started, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - started, peak_rss_mb(), time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--skip", nargs="*", default=[], help="engines to leave out")
    args = parser.parse_args()
    print(
        f"{'rows':>10}  {'case':<7} {'engine':<36} {'seconds':>9} {'cpu s':>7} {'peak MB':>8} "
        f"{'phlo is':>9}"
    )
    for n in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            data.mkdir()
            generate(n, data)
            results = {}
            for i, name in enumerate(MERGES):
                if name in args.skip or (name.startswith("original") and n > SLOW_PEER_MAX_ROWS):
                    continue
                work = Path(tmp) / f"work{i}"
                work.mkdir()
                spawn(_build_child, name, str(data), str(work))
                results[name] = spawn(_merge_child, name, str(data), str(work))
            report(n, "merge", results)
            dedupes = {name: spawn(_dedupe_child, name, str(data), tmp) for name in DEDUPES}
            report(n, "dedupe", dedupes)


def report(n: int, case: str, results: dict[str, tuple[float, float, float]]) -> None:
    phlo_seconds = results["phlo"][0]
    for name, (seconds, peak, cpu) in results.items():
        ratio = "" if name == "phlo" else f"{seconds / phlo_seconds:.1f}x"
        print(
            f"{n:>10,}  {case:<7} {name:<36} {seconds:>9.3f} {cpu:>7.2f} {peak:>8.0f} {ratio:>9}",
            flush=True,
        )


if __name__ == "__main__":
    main()
