"""Maintenance honours what the table's own metadata says: the tags and branches other engines
(PyIceberg) create inside it, and the Iceberg retention settings (table properties
``history.expire.*`` and per-ref ``max-snapshot-age-ms``/``min-snapshots-to-keep``/
``max-ref-age-ms``). Expected rows come from a plain dict model of the table."""

from __future__ import annotations

import datetime as dt
import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table as IcebergTable
from tests.conftest import EVENTS_SCHEMA, make_events

import phlo
from phlo import errors

FUTURE = dt.timedelta(seconds=-60)  # an age that makes every snapshot and file "old enough"
DAY_MS = 86_400_000

Model = dict[int, float]


def pyiceberg(lh: phlo.Lakehouse, name: str = "raw.events") -> IcebergTable:
    return SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table(name)


def rows(table: pa.Table) -> Model:
    return dict(zip(table.column("id").to_pylist(), table.column("value").to_pylist(), strict=True))


def changed(start: int, n: int) -> pa.Table:
    """Events with ids from `start` whose values differ from `make_events`'."""
    events = make_events(start, n)
    value = events.schema.get_field_index("value")
    return events.set_column(value, "value", pc.add(events.column("value"), 100.0))


def load(table: phlo.Table, model: Model, data: pa.Table, *, upsert: bool = False) -> None:
    """Writes `data` with phlo and applies the same change to `model`."""
    if upsert:
        table.merge(data, "id")
    else:
        table.append(data)
    model.update(rows(data))


def snapshot_ids(table: IcebergTable) -> list[int]:
    return sorted(s.snapshot_id for s in table.refresh().snapshots())


def history(table: IcebergTable) -> list[int]:
    """Snapshot ids of main, oldest first."""
    table.refresh()
    return [s.snapshot_id for s in sorted(table.snapshots(), key=lambda s: s.sequence_number)]


def test_pyiceberg_tags_and_branches_keep_their_rows_through_expiry_and_orphan_removal(
    lh, events_table
):
    model: Model = {}
    load(events_table, model, make_events(0, 10))
    pyi = pyiceberg(lh)
    tagged, tagged_rows = pyi.current_snapshot().snapshot_id, dict(model)
    load(events_table, model, make_events(10, 5))
    branched, branched_rows = pyiceberg(lh).current_snapshot().snapshot_id, dict(model)
    pyi.refresh().manage_snapshots().create_tag(tagged, "t1").create_branch(branched, "b1").commit()
    # phlo moves on: appends, and upserts that rewrite files the tag and the branch still read.
    load(events_table, model, make_events(20, 5))
    load(events_table, model, changed(0, 5), upsert=True)
    lh.create_branch("dev")
    dev: Model = dict(model)
    load(lh.table("raw.events", ref="dev"), dev, make_events(100, 3))
    load(events_table, model, changed(10, 3), upsert=True)

    result = lh.expire_snapshots(older_than=FUTURE, keep_last=1)
    head = pyi.refresh().current_snapshot().snapshot_id
    # main keeps its head, the tag's snapshot and the branch's head; the rest went.
    assert snapshot_ids(pyi) == sorted([tagged, branched, head])
    assert result.snapshots_expired > 0 and result.refs_expired == []
    stray = next((lh.root / "warehouse/raw.db/events/data").iterdir()) / "leftover.parquet"
    stray.write_bytes(b"partial")
    assert lh.remove_orphan_files(older_than=FUTURE).files == [f"file://{stray}"]

    pyi = pyiceberg(lh)
    assert {name: ref.snapshot_id for name, ref in pyi.refs().items()} == {
        "main": head,
        "t1": tagged,
        "b1": branched,
    }
    assert rows(pyi.scan(snapshot_id=tagged).to_arrow()) == tagged_rows
    assert rows(pyi.scan(snapshot_id=branched).to_arrow()) == branched_rows
    assert rows(pyi.scan().to_arrow()) == model
    assert rows(lh.table("raw.events", ref="dev").scan().to_arrow()) == dev
    # The table-level branch still takes writes; phlo's branch still merges.
    pyi.append(make_events(200, 2), branch="b1")
    branched_rows.update(rows(make_events(200, 2)))
    b1 = pyiceberg(lh).refs()["b1"].snapshot_id
    assert rows(pyiceberg(lh).scan(snapshot_id=b1).to_arrow()) == branched_rows
    lh.merge("dev")
    model.update(rows(make_events(100, 3)))
    assert rows(events_table.scan().to_arrow()) == model


def test_retention_properties_keep_more_than_the_arguments(lh):
    kept = lh.create_table(
        "raw.kept", EVENTS_SCHEMA, properties={"history.expire.min-snapshots-to-keep": "3"}
    )
    for i in range(5):
        kept.append(make_events(i * 10, 10))
    ids = history(pyiceberg(lh, "raw.kept"))
    assert lh.expire_snapshots(older_than=FUTURE, keep_last=1).snapshots_expired == 2
    assert history(pyiceberg(lh, "raw.kept")) == ids[2:]
    # The caller's keep_last is a floor the property cannot lower.
    assert lh.expire_snapshots(older_than=FUTURE, keep_last=2).snapshots_expired == 0

    young = lh.create_table("raw.young", EVENTS_SCHEMA)
    for i in range(3):
        young.append(make_events(i * 10, 10))
    pyi = pyiceberg(lh, "raw.young")
    with pyi.transaction() as tx:
        tx.set_properties({"history.expire.max-snapshot-age-ms": str(DAY_MS)})
    ids = history(pyi)
    assert lh.expire_snapshots(older_than=FUTURE, keep_last=1).snapshots_expired == 0
    assert history(pyi) == ids
    with pyi.transaction() as tx:
        tx.remove_properties("history.expire.max-snapshot-age-ms")
    assert lh.expire_snapshots(older_than=FUTURE, keep_last=1).snapshots_expired == 2
    assert history(pyi) == ids[2:]


def test_a_table_level_branch_keeps_its_own_history_and_old_refs_expire(lh, events_table):
    for i in range(6):
        events_table.append(make_events(i * 10, 10))
    pyi = pyiceberg(lh)
    ids = history(pyi)
    pyi.manage_snapshots().create_branch(ids[3], "audit", min_snapshots_to_keep=3).create_tag(
        ids[0], "old", max_ref_age_ms=1
    ).create_tag(ids[0], "young", max_ref_age_ms=DAY_MS).create_branch(
        ids[4], "stale", max_ref_age_ms=1
    ).commit()
    time.sleep(0.01)  # the "old" and "stale" refs' snapshots are now past their 1 ms age

    result = lh.expire_snapshots(older_than=FUTURE, keep_last=1)
    assert result.refs_expired == ["raw.events@main:old", "raw.events@main:stale"]
    # main keeps its head; "audit" its head and 2 ancestors; "young" the first: only the
    # snapshot the expired "stale" branch held goes.
    assert snapshot_ids(pyi) == sorted([ids[0], ids[1], ids[2], ids[3], ids[5]])
    assert sorted(pyi.refresh().refs()) == ["audit", "main", "young"]
    assert sorted(pyi.scan(snapshot_id=ids[1]).to_arrow().column("id").to_pylist()) == list(
        range(20)
    )

    # The table-wide max-ref-age applies to refs without their own.
    with pyi.transaction() as tx:
        tx.set_properties({"history.expire.max-ref-age-ms": "1"})
    time.sleep(0.01)
    result = lh.expire_snapshots(older_than=FUTURE, keep_last=1)
    assert result.refs_expired == ["raw.events@main:audit"]
    assert sorted(pyi.refresh().refs()) == ["main", "young"]
    assert snapshot_ids(pyi) == sorted([ids[0], ids[5]])


def test_a_bad_retention_setting_is_refused_and_changes_nothing(lh, events_table):
    for i in range(3):
        events_table.append(make_events(i * 10, 10))
    pyi = pyiceberg(lh)
    with pyi.transaction() as tx:
        tx.set_properties({"history.expire.min-snapshots-to-keep": "many"})
    before = (pyi.refresh().metadata_location, history(pyi))
    with pytest.raises(errors.InputError, match=r"min-snapshots-to-keep.*raw\.events"):
        lh.expire_snapshots(older_than=FUTURE, keep_last=1)
    assert (pyi.refresh().metadata_location, history(pyi)) == before


def test_pyiceberg_expiry_then_phlo_writes_merges_and_maintenance(lh, events_table):
    model: Model = {}
    for i in range(3):
        load(events_table, model, make_events(i * 10, 10))
    lh.create_branch("dev")
    dev: Model = dict(model)
    load(lh.table("raw.events", ref="dev"), dev, make_events(100, 4))
    load(events_table, model, make_events(30, 5))
    pyi = pyiceberg(lh)
    tagged = history(pyi)[1]
    pyi.manage_snapshots().create_tag(tagged, "t1").commit()
    # PyIceberg expires every unprotected snapshot of main, dev's fork point included.
    pyi.refresh().maintenance.expire_snapshots().older_than(dt.datetime.now(dt.UTC)).commit()
    head = pyi.refresh().current_snapshot().snapshot_id
    assert snapshot_ids(pyi) == sorted([tagged, head])

    load(events_table, model, make_events(40, 5))
    load(events_table, model, changed(0, 3), upsert=True)
    lh.expire_snapshots(older_than=FUTURE, keep_last=1)
    lh.remove_orphan_files(older_than=FUTURE)
    assert rows(lh.table("raw.events", ref="dev").scan().to_arrow()) == dev
    assert sorted(pyiceberg(lh).scan(snapshot_id=tagged).to_arrow().column("id").to_pylist()) == (
        list(range(20))
    )
    lh.merge("dev")
    model.update(rows(make_events(100, 4)))
    assert rows(events_table.scan().to_arrow()) == model
    assert rows(pyiceberg(lh).scan().to_arrow()) == model
