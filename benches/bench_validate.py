"""Validation: phlo.validate vs Pandera (pandas backend) and Pandera (polars backend) — the
same contract on the same rows, in one run, ratios printed.

Contract (the seed's EventSchema plus two checks): `id` string, not null, unique; `ts`
timestamptz, not null; `value` double in [0, 100]; `category` in 4 values; `n` int in
[0, 1000]; `code` string of length 1..12. Data is valid (the time a contract costs on every
ingestion). Each engine runs in a fresh *spawned* process that first loads the data in its own
form (pyarrow for phlo, pandas / polars for Pandera; not timed), then validates 3 times;
the median is reported, with peak RSS (`VmHWM`) and the memory the validation added on top of
the loaded input.

    make bench-validate                                   # release build, N = 1M and 5M
    .venv/bin/python benches/bench_validate.py --rows 1000000
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pandera_pandas
import pandera.polars as pandera_polars
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pandera.typing import Series

from harness import rss_mb, spawn

CATEGORIES = ["click", "view", "purchase", "refund"]


def generate(n: int, path: Path) -> None:
    rng = np.random.default_rng(11)
    start = np.datetime64("2024-01-01T00:00:00", "us").astype(np.int64)
    table = pa.table(
        {
            "id": pa.array([f"evt-{i:010d}" for i in range(n)]),
            "ts": pa.array(
                start + rng.integers(0, 30 * 86_400_000_000, n), pa.timestamp("us", tz="UTC")
            ),
            "value": pa.array(rng.random(n) * 100),
            "category": pa.array(np.array(CATEGORIES)[rng.integers(0, 4, n)]),
            "n": pa.array(rng.integers(0, 1001, n)),
            "code": pa.array(np.array(["a", "bb", "ccc", "dddddddd"])[rng.integers(0, 4, n)]),
        }
    )
    pq.write_table(table, path)


def pandas_model():
    pa_ = pandera_pandas

    class Events(pa_.DataFrameModel):
        id: Series[str] = pa_.Field(nullable=False, unique=True)
        ts: Series[pd.DatetimeTZDtype(unit="us", tz="UTC")] = pa_.Field(nullable=False)  # type: ignore[valid-type]
        value: Series[float] = pa_.Field(ge=0, le=100)
        category: Series[str] = pa_.Field(isin=CATEGORIES)
        n: Series[int] = pa_.Field(in_range={"min_value": 0, "max_value": 1000})
        code: Series[str] = pa_.Field(str_length={"min_value": 1, "max_value": 12})

    return Events


def polars_model():
    pa_ = pandera_polars

    class Events(pa_.DataFrameModel):
        id: str = pa_.Field(nullable=False, unique=True)
        ts: pl.Datetime(time_unit="us", time_zone="UTC") = pa_.Field(nullable=False)  # type: ignore[valid-type]
        value: float = pa_.Field(ge=0, le=100)
        category: str = pa_.Field(isin=CATEGORIES)
        n: int = pa_.Field(in_range={"min_value": 0, "max_value": 1000})
        code: str = pa_.Field(str_length={"min_value": 1, "max_value": 12})

    return Events


def phlo_case(path: Path) -> Callable[[], object]:
    import phlo

    table = pq.read_table(path)
    model = pandas_model()  # the same contract users write; phlo compiles it once
    validator = phlo.Validator(model)
    assert not validator.pandera_checks
    return lambda: validator.validate(table)


def pandera_pandas_case(path: Path) -> Callable[[], object]:
    frame = pq.read_table(path).to_pandas()
    model = pandas_model()
    return lambda: model.validate(frame, lazy=True)


def pandera_polars_case(path: Path) -> Callable[[], object]:
    frame = pl.read_parquet(path)
    model = polars_model()
    return lambda: model.validate(frame, lazy=True)


CASES = {
    "phlo.validate (Rust plan)": phlo_case,
    "Pandera, polars backend": pandera_polars_case,
    "Pandera, pandas backend": pandera_pandas_case,
}


def _child(name: str, path: str, queue: mp.Queue) -> None:
    run = CASES[name](Path(path))
    loaded = rss_mb("VmRSS:")
    times = []
    for _ in range(3):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    queue.put((statistics.median(times), rss_mb("VmHWM:"), loaded))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 5_000_000])
    args = parser.parse_args()
    print(
        f"{'rows':>10}  {'engine':<28} {'seconds':>8} {'peak MB':>8} {'added MB':>9} {'phlo is':>9}"
    )
    for n in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "events.parquet"
            generate(n, path)
            results = {name: spawn(_child, name, str(path)) for name in CASES}
        base = results["phlo.validate (Rust plan)"][0]
        for name, (seconds, peak, loaded) in results.items():
            ratio = "" if name.startswith("phlo") else f"{seconds / base:.1f}x faster"
            print(
                f"{n:>10,}  {name:<28} {seconds:>8.3f} {peak:>8.0f} {peak - loaded:>9.0f} {ratio:>9}",
                flush=True,
            )


if __name__ == "__main__":
    main()
