"""Generated source data: each day has its own ids (day number * 1000 + i), so partitions never
share keys; on BAD_DAY one value breaks the contract (value >= 0)."""

import datetime as dt

ROWS_PER_DAY = 5
BAD_DAY = "2025-01-13"
FIRST_DAY = dt.date(2025, 1, 1)


def day_number(partition_date: str) -> int:
    return (dt.date.fromisoformat(partition_date) - FIRST_DAY).days + 1


def events_of(partition_date: str) -> list[dict[str, object]]:
    base = day_number(partition_date) * 1000
    rows: list[dict[str, object]] = [
        {"id": base + i, "category": "abc"[i % 3], "value": float(i)} for i in range(ROWS_PER_DAY)
    ]
    if partition_date == BAD_DAY:
        rows[2]["value"] = -1.0
    return rows
