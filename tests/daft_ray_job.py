"""A Daft job on a Ray cluster, as a user would run it against `phlo catalog serve`:
``python daft_ray_job.py RAY_ADDRESS CATALOG_URI SOURCE TARGET``.

Reads table SOURCE (``id``, ``city``, ``amount``) through the Iceberg REST catalog at
CATALOG_URI (a branch URI ``…/iceberg/<branch>`` works on that branch), totals ``amount`` and
counts rows per city on Ray, creates TARGET when it is missing and appends the totals to it.
Prints one line of JSON: the runner Daft used, the cluster's CPUs and what the write did."""

from __future__ import annotations

import json
import sys

import daft
import pyarrow as pa
import ray
from daft import col
from pyiceberg.catalog.rest import RestCatalog

TOTALS = pa.schema(
    [
        pa.field("city", pa.string()),
        pa.field("total", pa.float64()),
        pa.field("rows", pa.int64()),
    ]
)


def main(ray_address: str, uri: str, source: str, target: str) -> None:
    daft.set_runner_ray(address=ray_address)
    catalog = RestCatalog("phlo", uri=uri)
    events = daft.read_iceberg(catalog.load_table(source))
    totals = events.groupby("city").agg(
        col("amount").sum().alias("total"), col("id").count().alias("rows")
    )
    if not catalog.table_exists(target):
        catalog.create_table(target, schema=TOTALS)
    written = totals.write_iceberg(catalog.load_table(target), mode="append").to_pydict()
    report = {
        "runner": daft.get_or_create_runner().name,
        "cpus": ray.cluster_resources().get("CPU"),
        "written": written,
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:5])
