"""A format-version 1 table PyIceberg wrote (v1 manifests without sequence numbers, a partition
field voided by a spec change, a copy-on-write delete): phlo refuses to write it as v1 saying
how to upgrade, and once upgraded writes position deletes (merge-on-read merges and deletes)
that apply to the v1 files. phlo, PyIceberg and DuckDB read the same rows after every write,
and time travel to a v1 snapshot still reads what it held."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import BucketTransform, DayTransform
from pyiceberg.types import DateType, LongType, StringType
from tests.duckdb_support import duckdb_rest
from tests.outside_support import Row, optional, sql_catalog

import phlo
from phlo.catalog_server import CatalogServer

SCHEMA = Schema(
    optional(1, "id", LongType()),
    optional(2, "v", StringType()),
    optional(3, "d", DateType()),
)
SPEC = PartitionSpec(
    PartitionField(3, 1000, DayTransform(), "d_day"),
    PartitionField(1, 1001, BucketTransform(3), "id_bucket"),
)


def rows(ids: Any, v: str) -> list[Row]:
    return [{"id": i, "v": v, "d": dt.date(2024, 1, 1) + dt.timedelta(days=i % 4)} for i in ids]


def arrow(batch: list[Row]) -> pa.Table:
    return pa.Table.from_pylist(batch, schema=SCHEMA.as_arrow())


def v1_table(lh: phlo.Lakehouse) -> dict[int, Row]:
    """raw.t as PyIceberg writes it in format v1: two appends, the bucket field removed (void
    in v1), a third append, a delete; its rows."""
    table = sql_catalog(lh).create_table(
        "raw.t", schema=SCHEMA, partition_spec=SPEC, properties={"format-version": "1"}
    )
    table.append(arrow(rows(range(0, 10), "a")))
    table.append(arrow(rows(range(10, 20), "a")))
    with table.update_spec() as update:
        update.remove_field("id_bucket")
    table.append(arrow(rows(range(20, 30), "b")))
    table.delete(delete_filter="id = 3")
    return {r["id"]: r for r in rows(range(30), "a") + rows(range(20, 30), "b") if r["id"] != 3}


def assert_all_read(lh: phlo.Lakehouse, model: dict[int, Row], when: str) -> None:
    expected = sorted(model.values(), key=lambda r: r["id"])
    ours = lh.table("raw.t").scan().to_arrow().to_pylist()
    assert sorted(ours, key=lambda r: r["id"]) == expected, when
    theirs = sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()
    assert sorted(theirs, key=lambda r: r["id"]) == expected, when
    with CatalogServer(lh, port=0) as server:
        [duckdb] = duckdb_rest(server.uri, "main", ["SELECT id, v, d FROM lake.raw.t ORDER BY id"])
    assert [(r["id"], r["v"], r["d"].isoformat()) for r in expected] == [tuple(r) for r in duckdb]


@pytest.mark.parametrize("write_mode", ["merge-on-read", "copy-on-write"])
def test_phlo_writes_over_an_upgraded_v1_table_read_alike_everywhere(lh, write_mode):
    model = v1_table(lh)
    v1_snapshot = sql_catalog(lh).load_table("raw.t").current_snapshot().snapshot_id
    v1_rows = dict(model)
    assert_all_read(lh, model, "as PyIceberg wrote it")

    t = lh.table("raw.t")
    with pytest.raises(phlo.errors.InputError, match="format-version"):
        t.merge(arrow(rows([5], "x")), "id", write_mode=write_mode)
    assert_all_read(lh, model, "after the refused merge")

    t.set_properties({"format-version": "2"})
    upserted = rows([5, 15, 25, 40], "m")
    result = t.merge(arrow(upserted), "id", write_mode=write_mode)
    assert (result.rows_updated, result.rows_inserted) == (3, 1)
    model.update({r["id"]: r for r in upserted})
    assert_all_read(lh, model, "after the merge")

    deleted = t.delete(("v", "=", "a"), write_mode=write_mode).rows_deleted
    assert deleted == sum(r["v"] == "a" for r in model.values())
    model = {k: r for k, r in model.items() if r["v"] != "a"}
    assert_all_read(lh, model, "after the delete")

    then = t.scan(snapshot_id=v1_snapshot).to_arrow()["id"].to_pylist()
    assert sorted(then) == sorted(v1_rows)

    t.compact()
    assert_all_read(lh, model, "after compaction")
