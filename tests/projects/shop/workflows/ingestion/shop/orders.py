"""Orders of the shop: each day has its own ids (day number * 100 + i). On BAD_DAY one order has
a category the seed does not know, which the dbt tests catch (the Pandera contract allows it)."""

import datetime as dt

from workflows.schemas.orders import OrderSchema

from phlo import phlo_ingestion

BAD_DAY = "2025-01-09"
ROWS_PER_DAY = 4


def orders_of(partition_date: str) -> list[dict[str, object]]:
    day = (dt.date.fromisoformat(partition_date) - dt.date(2025, 1, 1)).days + 1
    rows: list[dict[str, object]] = [
        {"id": day * 100 + i, "category": "abc"[i % 3], "amount": float(day * 10 + i)}
        for i in range(ROWS_PER_DAY)
    ]
    if partition_date == BAD_DAY:
        rows[0]["category"] = "z"
    return rows


@phlo_ingestion(table_name="orders", unique_key="id", validation_schema=OrderSchema, group="shop")
def shop_orders(partition_date: str) -> list[dict[str, object]]:
    """Orders of one day."""
    return orders_of(partition_date)
