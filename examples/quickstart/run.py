"""phlo quickstart: an embedded lakehouse, a day-partitioned Iceberg table, generated events
appended in two commits, read back with pruning and time travel.

Run it with `make demo` (or `python examples/quickstart/run.py` inside the venv). The lakehouse
lives in `examples/quickstart/.phlo/`; each run starts the table afresh.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import phlo
from phlo.errors import NoSuchTableError

HERE = Path(__file__).resolve().parent
SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("category", pa.string()),
        pa.field("value", pa.float64()),
    ]
)


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
    try:
        lh.drop_table("raw.events", purge=True)
    except NoSuchTableError:
        pass
    events = lh.create_table("raw.events", SCHEMA, partition_by=["day(ts)"])

    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    first = events.append(generate_events(50_000, start, days=7, seed=1))
    second = events.append(generate_events(20_000, start + dt.timedelta(days=7), days=3, seed=2))
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

    before = events.scan(snapshot_id=first.snapshot_id).to_arrow()
    print(f"time travel    {before.num_rows:>7,} rows at snapshot {first.snapshot_id}")
    for snapshot in events.history():
        print(
            f"history        {snapshot.timestamp:%H:%M:%S} {snapshot.operation:<7} "
            f"+{snapshot.summary['added-records']} rows, total {snapshot.summary['total-records']}"
        )
    assert everything.num_rows == 70_000 and before.num_rows == 50_000


if __name__ == "__main__":
    main()
