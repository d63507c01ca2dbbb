"""phlo quickstart: an embedded lakehouse, a day-partitioned Iceberg table created from a
Pandera contract, generated events validated and appended (one batch on a branch, merged), a bad
batch refused, then read back with pruning and time travel.

Run it with `make demo` (or `python examples/quickstart/run.py` inside the venv). The lakehouse
lives in `examples/quickstart/.phlo/`; each run starts the table afresh.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc
from pandera.typing import Series

import phlo
from phlo.errors import NoSuchTableError, ValidationError

HERE = Path(__file__).resolve().parent


class EventSchema(pandera.DataFrameModel):
    """The events contract: the table's schema and the checks every batch must pass."""

    id: Series[str] = pandera.Field(nullable=False, unique=True, description="Event id")
    ts: Series[pd.DatetimeTZDtype(tz="UTC")] = pandera.Field(nullable=False)  # type: ignore[valid-type]
    category: Series[str] = pandera.Field(isin=["click", "view", "purchase"], nullable=True)
    value: Series[float] = pandera.Field(ge=0, le=100, nullable=True)

    class Config:
        strict = True
        coerce = True


SCHEMA = phlo.pandera_to_iceberg(EventSchema)


def generate_events(n: int, start: dt.datetime, days: int, seed: int) -> pa.Table:
    """`n` synthetic events spread over `days` days (deterministic for a seed)."""
    rng = random.Random(seed)
    seconds = days * 86_400
    return pa.table(
        {
            "id": [f"evt-{seed}-{i:07d}" for i in range(n)],
            "ts": [start + dt.timedelta(seconds=rng.randrange(seconds)) for _ in range(n)],
            "category": [rng.choice(["click", "view", "purchase"]) for _ in range(n)],
            "value": [round(rng.uniform(0, 100), 2) for _ in range(n)],
        },
        schema=SCHEMA,
    )


def main() -> None:
    lh = phlo.Lakehouse.open(HERE / ".phlo")
    lh.create_namespace("raw", exist_ok=True)
    for branch in lh.branches()[1:]:  # leftovers of an interrupted earlier run
        lh.delete_branch(branch)
    try:
        lh.drop_table("raw.events", purge=True)
    except NoSuchTableError:
        pass
    events = lh.create_table("raw.events", EventSchema, partition_by=["day(ts)"])

    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    first = events.append(generate_events(50_000, start, days=7, seed=1), validate=EventSchema)
    # The second load lands on a branch first and is published by a merge (all or nothing).
    lh.create_branch("ingest")
    later = generate_events(20_000, start + dt.timedelta(days=7), days=3, seed=2)
    second = lh.table("raw.events", ref="ingest").append(later, validate=EventSchema)
    assert events.scan().to_arrow().num_rows == 50_000, "main does not see the branch yet"
    lh.merge("ingest", message="publish the second load")
    lh.delete_branch("ingest")
    print(f"lakehouse      {lh.root}")
    print(f"table          {events.name}  partitioned by {events.partition_spec[0].transform}(ts)")
    print(
        f"commit 1       {first.rows:>7,} rows  {first.files_added} files  snapshot {first.snapshot_id}"
    )
    print(
        f"commit 2       {second.rows:>7,} rows  {second.files_added} files  snapshot {second.snapshot_id}"
    )

    everything = events.scan().to_arrow()
    print(f"read back      {everything.num_rows:>7,} rows")
    per_category = everything.group_by("category").aggregate([("value", "sum"), ("id", "count")])
    for row in sorted(per_category.to_pylist(), key=lambda r: r["category"]):
        print(
            f"  {row['category']:<10} {row['id_count']:>7,} events  value {row['value_sum']:>12,.2f}"
        )

    day = dt.datetime(2024, 1, 3, tzinfo=dt.UTC)
    scan = events.scan(filter=("ts", "between", (day, day + dt.timedelta(hours=23, minutes=59))))
    one_day = scan.to_arrow()
    print(
        f"2024-01-03     {one_day.num_rows:>7,} rows, read {scan.files_scanned} of "
        f"{scan.files_total} data files (partition pruning)"
    )
    purchases = events.scan(columns=["value"], filter=("category", "=", "purchase")).to_arrow()
    print(
        f"purchases      {purchases.num_rows:>7,} rows, mean value {pc.mean(purchases['value']).as_py():.2f}"
    )

    bad = generate_events(3, start, days=1, seed=3).to_pandas()
    bad.loc[1, "value"] = -5.0
    bad.loc[2, "category"] = "refund"
    try:
        events.append(bad, validate=EventSchema)
    except ValidationError as err:
        refused = ", ".join(
            f"{r['column']} {r['check']} (row {r['sample'][0]['index']})" for r in err.errors()
        )
        print(f"refused        bad batch, nothing written: {refused}")

    commit = next(e for e in lh.log("main") if e.message.startswith("append"))
    before = lh.table("raw.events", as_of=commit).scan().to_arrow()
    print(f"time travel    {before.num_rows:>7,} rows right after commit {commit.commit_id[:13]}…")
    for snapshot in events.history():
        print(
            f"history        {snapshot.timestamp:%H:%M:%S} {snapshot.operation:<7} "
            f"+{snapshot.summary['added-records']} rows, total {snapshot.summary['total-records']}"
        )
    assert everything.num_rows == 70_000 and before.num_rows == 50_000


if __name__ == "__main__":
    main()
