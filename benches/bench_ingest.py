"""Ingestion end to end: `@phlo_ingestion(...).run()` vs dlt's own Iceberg path (the filesystem
destination with ``table_format="iceberg"``) on the same data, with the phase split of each.

Data: the records of `tests/http_source.py`'s `EventApi` (one generator for everyone):
``eventId`` (int, the key), ``dateString`` (ISO timestamp), ``userName`` (97 values),
``amount`` (float) and a nested ``details`` object (``{"tags": [...], "source": ...}``), kept
in its row as JSON (``max_table_nesting=0`` for both engines, so each loads one table). After
dlt's name normalization the columns are ``event_id``, ``date_string``, ``user_name``,
``amount``, ``details``.

Sources: *dict* — a dlt `rest_api_source` paging through the local EventApi (JSON over HTTP on
127.0.0.1, served by this process); *arrow* — the same rows as in-memory Arrow batches of
65,536 rows (built before the clock starts). phlo gets a Pandera contract (unique key, a range
check); dlt gets the same column types as hints.

Cases (each in a fresh spawned process, its peak RSS is `VmHWM`):

- ``phlo-dict``, ``phlo-arrow``: a first run of one partition into a new table;
- ``phlo-rerun``: the same partition again from the dict source (upsert of every row);
- ``dlt-dict``, ``dlt-arrow``: ``pipeline.extract → normalize → load``, write disposition
  ``append``, into a new Iceberg table;
- ``dlt-merge`` / ``phlo-merge``: at ``--merge-rows`` (dlt's Iceberg merge is PyIceberg
  ``upsert`` in 1,000-row chunks: minutes at 100k rows): a first load into a new table, then a
  re-load of the same rows (``merge``, ``primary_key="event_id"``, strategy ``upsert``), and
  phlo's first run and re-run at the same size.

Row counts are checked afterwards: every table read back (phlo's with a scan, dlt's with
PyIceberg) holds every id once, and phlo's dict-sourced and Arrow-sourced tables are equal.

    .venv/bin/python benches/bench_ingest.py                      # 1M rows, merge at 100k
    .venv/bin/python benches/bench_ingest.py --rows 100000 --merge-rows 10000
"""

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from harness import peak_rss_mb, spawn

PARTITION = "2024-01-01"
TABLE = "events"
BATCH_ROWS = 65_536
PHLO_PHASES = ("stage", "validate", "merge", "commit", "publish")
CASES = (
    "phlo-dict",
    "phlo-rerun",
    "phlo-arrow",
    "dlt-dict",
    "dlt-arrow",
    "phlo-merge",
    "dlt-merge",
)
PAGINATOR = {
    "type": "page_number",
    "page_param": "page",
    "base_page": 1,
    "total_path": "total_pages",
}
#: Column types dlt is told, as phlo's contract types them.
DLT_COLUMNS = {
    "event_id": {"data_type": "bigint", "nullable": False},
    "date_string": {"data_type": "timestamp", "timezone": True},
    "user_name": {"data_type": "text"},
    "amount": {"data_type": "double"},
    "details": {"data_type": "json"},
}


# --- the same data, from HTTP or from memory -------------------------------------------------


def rest_source(url: str) -> Any:
    from dlt.sources.rest_api import rest_api_source

    return rest_api_source(
        {
            "client": {"base_url": url.rsplit("/", 1)[0] + "/", "paginator": PAGINATOR},
            "resources": [{"name": TABLE, "endpoint": {"path": TABLE, "data_selector": "data"}}],
        }
    )


def arrow_events(n: int) -> pa.Table:
    """`http_source.record(i)` for i in [0, n), as dlt normalizes it, built column-wise."""
    import datetime as dt

    import numpy as np

    i = np.arange(n, dtype=np.int64)
    start = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000
    details = [
        json.dumps({"tags": [f"t{k % 3}", f"t{k % 5}"], "source": "api"}, separators=(",", ":"))
        for k in range(15)
    ]
    table = pa.table(
        {
            "event_id": pa.array(i),
            "date_string": pa.array(start + i * 60_000_000, pa.timestamp("us", tz="UTC")),
            "user_name": pa.array([f"user-{k}" for k in range(97)]).take(pa.array(i % 97)),
            "amount": pa.array(i * 0.25),
            "details": pa.array(details).take(pa.array(i % 15)),
        }
    )
    return pa.Table.from_batches(table.to_batches(max_chunksize=BATCH_ROWS))


def contract() -> Any:
    """The Pandera contract phlo validates against."""
    import pandas as pd
    import pandera.pandas as pdx
    from pandera.typing import Series

    class EventSchema(pdx.DataFrameModel):
        event_id: Series[int] = pdx.Field(unique=True, ge=0)
        date_string: Series[pd.DatetimeTZDtype] = pdx.Field(
            dtype_kwargs={"unit": "us", "tz": "UTC"}
        )
        user_name: Series[str]
        amount: Series[float] = pdx.Field(ge=0)
        details: Series[str]

    return EventSchema


# --- measured cases (one spawned process each) -----------------------------------------------


def phlo_child(work: str, source: str, where: str, queue: mp.Queue) -> None:
    """One `.run()` of the partition into the lakehouse under `work` (created if missing).
    `where` is the API's URL (dict source) or the row count (arrow source)."""
    import phlo
    from phlo.ingestion import phlo_ingestion

    os.chdir(work)  # the project root: no phlo.yaml, so phlo's defaults (WAP on)
    data = arrow_events(int(where)) if source == "arrow" else None

    def events(partition_date: str) -> Any:
        return data if data is not None else rest_source(where)

    definition = phlo_ingestion(
        table_name=TABLE,
        unique_key="event_id",
        group="bench",
        validation_schema=contract(),
        max_runtime_seconds=3600,
    )(events)
    lakehouse = phlo.Lakehouse.open(Path(work) / ".phlo")
    started = time.perf_counter()
    result = definition.run(PARTITION, lakehouse=lakehouse)
    seconds = time.perf_counter() - started
    assert result.published, result
    queue.put(
        {
            "seconds": seconds,
            "phases": dict(result.timings),
            "peak": peak_rss_mb(),
            "note": f"+{result.rows_inserted:,} ~{result.rows_updated:,}",
        }
    )


def dlt_child(work: str, source: str, where: str, disposition: str, queue: mp.Queue) -> None:
    """``extract → normalize → load`` into the Iceberg table under `work`."""
    import dlt

    os.chdir(work)
    if source == "arrow":
        data = arrow_events(int(where))

        @dlt.resource(name=TABLE)
        def events() -> Iterator[pa.RecordBatch]:
            yield from data.to_batches()

        resource = events()
    else:
        resource = rest_source(where).resources[TABLE]
        resource.apply_hints(columns=DLT_COLUMNS)
    resource.max_table_nesting = 0
    if disposition == "merge":
        write = {"disposition": "merge", "strategy": "upsert"}
        resource.apply_hints(
            table_format="iceberg", write_disposition=write, primary_key="event_id"
        )
    else:
        resource.apply_hints(table_format="iceberg", write_disposition="append")
    pipeline = dlt_pipeline(work)
    phases = {}
    started = time.perf_counter()
    pipeline.extract(resource, loader_file_format="parquet")
    phases["extract"] = time.perf_counter() - started
    pipeline.normalize()
    phases["normalize"] = time.perf_counter() - started - phases["extract"]
    pipeline.load(raise_on_failed_jobs=True)
    seconds = time.perf_counter() - started
    phases["load"] = seconds - phases["extract"] - phases["normalize"]
    queue.put({"seconds": seconds, "phases": phases, "peak": peak_rss_mb(), "note": disposition})


def dlt_pipeline(work: str) -> Any:
    """The pipeline of the Iceberg tables under `work` (its state kept there between runs)."""
    import dlt

    return dlt.pipeline(
        pipeline_name="bench",
        pipelines_dir=str(Path(work) / "pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=(Path(work) / "lake").as_uri()),
        dataset_name="raw",
    )


# --- correctness (not timed) -----------------------------------------------------------------


def phlo_table(work: str) -> pa.Table:
    import phlo

    return phlo.Lakehouse.open(Path(work) / ".phlo").table(f"raw.{TABLE}").scan().to_arrow()


def dlt_table(work: str) -> pa.Table:
    from dlt.common.libs.pyiceberg import get_iceberg_tables

    os.chdir(work)
    return get_iceberg_tables(dlt_pipeline(work), TABLE)[TABLE].scan().to_arrow()


def check_child(engine: str, work: str, rows: int, queue: mp.Queue) -> None:
    """Every id in [0, rows) exactly once."""
    import pyarrow.compute as pc

    table = phlo_table(work) if engine == "phlo" else dlt_table(work)
    ids = table.column("event_id")
    distinct = pc.count_distinct(ids).as_py()
    ok = table.num_rows == rows == distinct and pc.min(ids).as_py() == 0
    ok = ok and pc.max(ids).as_py() == rows - 1
    when = table.schema.field("date_string").type
    queue.put((ok, f"{table.num_rows:,} rows, {distinct:,} distinct ids, date_string {when}"))


def same_child(work_a: str, work_b: str, queue: mp.Queue) -> None:
    """phlo's dict-sourced and Arrow-sourced tables hold the same data columns."""
    columns = list(DLT_COLUMNS)
    a, b = (phlo_table(w).select(columns).sort_by("event_id") for w in (work_a, work_b))
    queue.put(a.equals(b))


# --- the run ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--merge-rows", type=int, default=100_000, help="rows of the merge cases")
    parser.add_argument("--page-size", type=int, default=10_000, help="records per HTTP page")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from http_source import EventApi

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        # Inherited by every spawned case: nothing under $HOME, no telemetry.
        os.environ.update(
            {
                "RUNTIME__DLTHUB_TELEMETRY": "false",
                "DLT_DATA_DIR": f"{tmp}/dlt-data",
                "DLT_LOCAL_DIR": f"{tmp}/dlt-local",
            }
        )
        with (
            EventApi(args.rows, args.page_size) as api,
            EventApi(args.merge_rows, args.page_size) as small,
        ):
            results, checks = run_cases(args, Path(tmp), api.url, small.url)
    report(args, results, checks)


def run_cases(
    args: argparse.Namespace, tmp: Path, url: str, small_url: str
) -> tuple[dict[str, dict[str, Any]], list[tuple[str, bool, str]]]:
    def work(name: str) -> str:
        (tmp / name).mkdir(exist_ok=True)
        return str(tmp / name)

    wanted = set(args.cases)
    n, m_rows = str(args.rows), args.merge_rows
    # label, child, folder (a re-run reuses its first run's), child's arguments, rows expected
    plan: list[tuple[str, Any, str, tuple[str, ...], int]] = []
    if wanted & {"phlo-dict", "phlo-rerun"}:
        plan.append(("phlo-dict", phlo_child, "phlo-dict", ("dict", url), args.rows))
    if "phlo-rerun" in wanted:
        plan.append(("phlo-rerun", phlo_child, "phlo-dict", ("dict", url), args.rows))
    if "phlo-arrow" in wanted:
        plan.append(("phlo-arrow", phlo_child, "phlo-arrow", ("arrow", n), args.rows))
    if "dlt-dict" in wanted:
        plan.append(("dlt-dict", dlt_child, "dlt-dict", ("dict", url, "append"), args.rows))
    if "dlt-arrow" in wanted:
        plan.append(("dlt-arrow", dlt_child, "dlt-arrow", ("arrow", n, "append"), args.rows))
    if "phlo-merge" in wanted:
        for run in ("first", "rerun"):
            plan.append((f"phlo-merge {run}", phlo_child, "phlo-m", ("dict", small_url), m_rows))
    if "dlt-merge" in wanted:
        for run in ("first", "rerun"):
            merge = ("dict", small_url, "merge")
            plan.append((f"dlt-merge {run}", dlt_child, "dlt-m", merge, m_rows))
    results: dict[str, dict[str, Any]] = {}
    for label, child, folder, child_args, rows in plan:
        results[label] = {**spawn(child, work(folder), *child_args), "rows": rows}
        print(f"  done: {label:<18} {results[label]['seconds']:8.2f} s", flush=True)

    checks = []
    for folder, rows in sorted({(p[2], p[4]) for p in plan}):
        ok, what = spawn(check_child, folder.split("-")[0], work(folder), rows)
        checks.append((folder, ok, what))
    if {"phlo-dict", "phlo-arrow"} <= {p[2] for p in plan}:
        same = spawn(same_child, work("phlo-dict"), work("phlo-arrow"))
        checks.append(("phlo-dict == phlo-arrow", same, "same data columns"))
    return results, checks


def report(
    args: argparse.Namespace,
    results: dict[str, dict[str, Any]],
    checks: list[tuple[str, bool, str]],
) -> None:
    load = os.getloadavg()
    print(
        f"\nrows {args.rows:,}, merge cases {args.merge_rows:,} rows, page size "
        f"{args.page_size:,}; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}"
    )
    print(f"{'case':<18} {'rows':>10} {'seconds':>9} {'peak MB':>8} {'own %':>6}  phases (s)")
    for label, r in results.items():
        phases = r["phases"]
        own = (
            f"{100 * sum(phases.get(p, 0.0) for p in PHLO_PHASES) / r['seconds']:5.1f}"
            if label.startswith("phlo")
            else ""
        )
        split = "  ".join(f"{k} {v:.2f}" for k, v in phases.items())
        print(
            f"{label:<18} {r['rows']:>10,} {r['seconds']:>9.2f} {r['peak']:>8.0f} {own:>6}  "
            f"{split}  [{r['note']}]"
        )
    print("(own %: phlo's stage + validate + merge + commit + publish, of end to end)")

    print("\nphlo vs dlt (dlt seconds / phlo seconds; > 1: phlo is faster)")
    pairs = [
        ("phlo-dict", "dlt-dict"),
        ("phlo-arrow", "dlt-arrow"),
        ("phlo-merge first", "dlt-merge first"),
        ("phlo-merge rerun", "dlt-merge rerun"),
    ]
    for phlo_case, dlt_case in pairs:
        if phlo_case in results and dlt_case in results:
            ratio = results[dlt_case]["seconds"] / results[phlo_case]["seconds"]
            print(f"  {phlo_case:<18} vs {dlt_case:<18} {ratio:6.2f}x")

    print("\ncorrectness")
    for what, ok, detail in checks:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}: {detail}")

    print("\ngoals")
    if "phlo-dict" in results:
        r = results["phlo-dict"]
        own = sum(r["phases"].get(p, 0.0) for p in PHLO_PHASES) / r["seconds"]
        print(
            f"  {'PASS' if own < 0.15 else 'FAIL'} phlo's own phases are "
            f"{100 * own:.1f} % of the dict source's end-to-end time (goal < 15 %)"
        )
    for phlo_case, dlt_case in pairs:
        if phlo_case in results and dlt_case in results:
            a, b = results[phlo_case]["seconds"], results[dlt_case]["seconds"]
            print(
                f"  {'PASS' if a < b else 'FAIL'} {phlo_case} ({a:.2f} s) is faster than "
                f"dlt's Iceberg path {dlt_case} ({b:.2f} s)"
            )
    if not all(ok for _, ok, _ in checks):
        raise SystemExit("a correctness check failed")


if __name__ == "__main__":
    main()
