"""Scan planning skips manifests by their partition summaries, in every partition spec a table
has had: a table partitioned by region, then (by PyIceberg, on the same catalog) by day, with
appends by phlo and by PyIceberg in both specs. Filtered scans return exactly what a plain
Python model selects, and read only the manifests that may hold a matching row."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.transforms import DayTransform

import phlo

SCHEMA = pa.schema([("id", pa.int64()), ("region", pa.string()), ("day", pa.date32())])
DAY0 = dt.date(2024, 3, 1)
REGIONS = ["eu", "us", "asia"]


def load(k: int, region: str | None, day: dt.date) -> list[dict[str, Any]]:
    return [{"id": k * 100 + i, "region": region, "day": day} for i in range(20)]


@pytest.fixture
def table_and_model(lh: phlo.Lakehouse) -> tuple[phlo.Table, list[dict[str, Any]]]:
    """Spec 0 (region): loads 0-3, one region each (load 3 by PyIceberg, region null);
    spec 1 (day): loads 4-7, one day each and several regions (load 7 by PyIceberg)."""
    table = lh.create_table(
        "raw.t",
        SCHEMA,
        partition_by=["region"],
        properties={"commit.manifest-merge.enabled": "false"},
    )
    pyi = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table("raw.t")
    model: list[dict[str, Any]] = []
    for k, region in enumerate(REGIONS):
        rows = load(k, region, DAY0)
        table.append(pa.Table.from_pylist(rows, schema=SCHEMA))
        model += rows
    rows = load(3, None, DAY0)
    pyi.append(pa.Table.from_pylist(rows, schema=SCHEMA))
    model += rows
    pyi = pyi.refresh()
    with pyi.update_spec() as spec:
        spec.remove_field("region")
        spec.add_field("day", DayTransform(), "day_day")
    for k in range(4, 8):
        day = DAY0 + dt.timedelta(days=k)
        rows = [r | {"region": REGIONS[r["id"] % 3]} for r in load(k, None, day)]
        if k < 7:
            lh.table("raw.t").append(pa.Table.from_pylist(rows, schema=SCHEMA))
        else:
            pyi.refresh().append(pa.Table.from_pylist(rows, schema=SCHEMA))
        model += rows
    return lh.table("raw.t"), model


CASES = [
    # (filter, model predicate, manifests read)
    (("region", "=", "eu"), lambda r: r["region"] == "eu", 1 + 4),
    (("region", "in", ["us", "asia"]), lambda r: r["region"] in ("us", "asia"), 2 + 4),
    (("region", "is null", None), lambda r: r["region"] is None, 1 + 4),
    (("region", "<", "a"), lambda r: r["region"] is not None and r["region"] < "a", 0 + 4),
    (
        ("day", "=", DAY0 + dt.timedelta(days=5)),
        lambda r: r["day"] == DAY0 + dt.timedelta(5),
        4 + 1,
    ),
    (
        ("day", ">=", DAY0 + dt.timedelta(days=6)),
        lambda r: r["day"] >= DAY0 + dt.timedelta(6),
        4 + 2,
    ),
    (("day", "<", DAY0), lambda r: r["day"] < DAY0, 4 + 0),
    (("id", "=", 105), lambda r: r["id"] == 105, 4 + 4),
]


@pytest.mark.parametrize(("filter", "matches", "manifests"), CASES, ids=[str(c[0]) for c in CASES])
def test_filtered_scans_read_only_manifests_that_may_match_in_every_spec(
    table_and_model, filter, matches, manifests
):
    table, model = table_and_model
    scan = table.scan(filter=filter)
    assert (scan.manifests_scanned, scan.manifests_total) == (manifests, 8)
    assert scan.files_total == table.scan().files_total
    got = sorted(scan.to_arrow().to_pylist(), key=lambda r: r["id"])
    assert got == sorted((r for r in model if matches(r)), key=lambda r: r["id"])


def test_an_unfiltered_scan_reads_every_manifest(table_and_model):
    table, model = table_and_model
    scan = table.scan()
    assert (scan.manifests_scanned, scan.manifests_total) == (8, 8)
    assert scan.to_arrow().num_rows == len(model)
