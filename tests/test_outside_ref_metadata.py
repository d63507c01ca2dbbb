"""phlo's branches and tags beside another engine's metadata cleanup. PyIceberg's commits to
main, with `write.metadata.delete-after-commit.enabled`, delete the metadata files that fall out
of main's `metadata-log`, some of which phlo's refs point at: a branch or tag made from main,
a branch's fork point, a branch merged into main by fast-forward. Each ref keeps a copy of such
a file that no log lists (docs/branches.md), so the ref still loads, reads its rows and merges;
orphan removal deletes a copy once no ref points at its file. On the embedded (SQLite) and the
PostgreSQL catalog. A branch whose fork point another engine's expiry cut or deleted is a merge
conflict that says what to do."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.catalog.sql import SqlCatalog

import phlo
from phlo.catalog_server import CatalogServer
from phlo.errors import CommitConflictError

# The catalog URI phlo connects to, by warehouse (`catalog_uri` is PyIceberg's spelling).
CATALOG: dict[str, str] = {}

HOUSEKEEPING = {
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "1",
}


def batch(ids: range) -> pa.Table:
    return pa.table({"id": pa.array(list(ids), pa.int64())})


def ids(lh: phlo.Lakehouse, ref: str = "main") -> list[int]:
    """raw.t's ids on `ref`, read by a new connection (`lh` keeps the metadata files it read)."""
    fresh = phlo.Lakehouse.connect(catalog=CATALOG[lh.warehouse], warehouse=lh.warehouse)
    return sorted(fresh.table("raw.t", ref=ref).scan().to_arrow().column("id").to_pylist())


def exists(location: str) -> bool:
    return Path(location.removeprefix("file://")).exists()


def pyiceberg_appends(lh: phlo.Lakehouse, starts: range) -> None:
    """PyIceberg commits to main, each deleting what falls out of its one-entry log."""
    catalog = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
    try:
        for start in starts:
            catalog.load_table("raw.t").append(batch(range(start, start + 1)))
    finally:
        catalog.engine.dispose()


def pyiceberg_ids(lh: phlo.Lakehouse) -> list[int]:
    catalog = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
    try:
        return sorted(catalog.load_table("raw.t").scan().to_arrow()["id"].to_pylist())
    finally:
        catalog.engine.dispose()


def refs_outlive_pyiceberg_cleanup(lh: phlo.Lakehouse) -> None:
    table = lh.create_table("raw.t", {"id": pa.int64()})
    table.set_properties(HOUSEKEEPING)
    table.append(batch(range(0, 2)))
    lh.create_tag("v1")
    lh.create_branch("dev")
    lh.create_branch("idle")
    forked_at = lh.table("raw.t", ref="v1").metadata_location
    lh.table("raw.t", ref="dev").append(batch(range(100, 102)))
    pyiceberg_appends(lh, range(10, 14))
    # PyIceberg deleted the file the tag, the idle branch and dev's fork point name.
    assert not exists(forked_at)
    assert lh.table("raw.t", ref="v1").metadata_location == forked_at
    assert ids(lh, "v1") == ids(lh, "idle") == [0, 1]
    assert ids(lh, "dev") == [0, 1, 100, 101]
    # REST clients of `phlo catalog serve` read the tag too (the answer carries the metadata).
    with CatalogServer(lh, port=0) as server:
        tag = RestCatalog("v1", uri=f"{server.uri}/iceberg/v1").load_table("raw.t")
        assert sorted(tag.scan().to_arrow()["id"].to_pylist()) == [0, 1]
    # main moved: the merge rebases, reading dev's fork point.
    lh.merge("dev", "main")
    assert ids(lh) == [0, 1, 10, 11, 12, 13, 100, 101]

    # A fast-forward makes main point at the branch's file, which stays the branch's.
    lh.create_branch("ff")
    lh.table("raw.t", ref="ff").append(batch(range(200, 201)))
    assert lh.merge("ff", "main").fast_forwarded == ["raw.t"]
    shared = lh.table("raw.t", ref="ff").metadata_location
    pyiceberg_appends(lh, range(20, 23))
    assert not exists(shared)
    assert ids(lh, "ff") == [0, 1, 10, 11, 12, 13, 100, 101, 200]
    lh.table("raw.t", ref="ff").append(batch(range(201, 202)))
    lh.merge("ff", "main")
    assert ids(lh) == [0, 1, 10, 11, 12, 13, 20, 21, 22, 100, 101, 200, 201]

    # Orphan removal keeps the copies refs use, and deletes one no ref needs any more: ff
    # moved off the file it shared with main.
    removed = lh.remove_orphan_files(older_than=dt.timedelta(0)).files
    assert exists(f"{forked_at}.phlo-ref") and f"{forked_at}.phlo-ref" not in removed
    assert f"{shared}.phlo-ref" in removed
    assert ids(lh, "v1") == ids(lh, "idle") == [0, 1]
    assert ids(lh, "ff") == [0, 1, 10, 11, 12, 13, 100, 101, 200, 201]
    assert pyiceberg_ids(lh) == ids(lh)


def test_refs_outlive_pyiceberg_metadata_cleanup(lh):
    CATALOG[lh.warehouse] = lh.catalog_uri
    refs_outlive_pyiceberg_cleanup(lh)


def test_refs_outlive_pyiceberg_metadata_cleanup_on_postgres(postgres_url, tmp_path):
    lh = phlo.Lakehouse.connect(postgres_url, f"file://{tmp_path / 'wh'}")
    lh.create_namespace("raw")
    CATALOG[lh.warehouse] = postgres_url
    refs_outlive_pyiceberg_cleanup(lh)


def pyiceberg_appends_and_expires_the_fork(lh: phlo.Lakehouse) -> tuple[int, str]:
    """Appends through PyIceberg, then expires every snapshot but its head (the phlo branches'
    fork point among them); returns the fork point's id and manifest list."""
    catalog = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
    try:
        head = catalog.load_table("raw.t").current_snapshot()
        fork = (head.snapshot_id, head.manifest_list)
        for start in (10, 11):
            catalog.load_table("raw.t").append(batch(range(start, start + 1)))
        table = catalog.load_table("raw.t")
        table.maintenance.expire_snapshots().older_than(dt.datetime.now(dt.UTC)).commit()
        assert len(catalog.load_table("raw.t").snapshots()) == 1
        return fork
    finally:
        catalog.engine.dispose()


def test_a_branch_rewrite_over_a_history_another_engine_cut_is_a_merge_conflict(lh):
    """A branch's copy-on-write delete re-applied on main needs what main did since the fork;
    PyIceberg's expiry cut that history: a conflict naming the fork point and saying to re-run
    the writes on a branch forked from main now. Re-running them there merges."""
    CATALOG[lh.warehouse] = lh.catalog_uri
    lh.create_table("raw.t", {"id": pa.int64()}).append(batch(range(0, 3)))
    lh.create_branch("dev")
    fork, _ = pyiceberg_appends_and_expires_the_fork(lh)
    lh.table("raw.t", ref="dev").delete(("id", "<", 1), write_mode="copy-on-write")
    with pytest.raises(CommitConflictError, match="cannot merge dev into main") as failure:
        lh.merge("dev", "main")
    message = str(failure.value)
    assert f"no longer leads back to snapshot {fork}, which the branch forked from" in message
    assert "another engine's snapshot expiry" in message
    assert "re-run the branch's writes on a branch forked from main now" in message
    assert ids(lh) == [0, 1, 2, 10, 11]
    lh.create_branch("again")
    lh.table("raw.t", ref="again").delete(("id", "<", 1), write_mode="copy-on-write")
    lh.merge("again", "main")
    assert ids(lh) == [1, 2, 10, 11]


def test_a_fork_point_whose_files_another_engine_deleted_is_a_merge_conflict(lh):
    """Java's expiry also deletes the expired snapshots' files (here by hand, after PyIceberg's
    expiry, which keeps them): the fork point's manifest list is gone, so what the branch
    changed cannot be told. A merge conflict saying what to do, not a storage error."""
    CATALOG[lh.warehouse] = lh.catalog_uri
    lh.create_table("raw.t", {"id": pa.int64()}).append(batch(range(0, 3)))
    lh.create_branch("dev")
    _, forked_list = pyiceberg_appends_and_expires_the_fork(lh)
    lh.table("raw.t", ref="dev").append(batch(range(20, 21)))
    Path(forked_list.removeprefix("file://")).unlink()
    with pytest.raises(CommitConflictError, match="cannot merge dev into main") as failure:
        lh.merge("dev", "main")
    message = str(failure.value)
    assert "the files of the snapshot the branch forked from are gone" in message
    assert "re-run the branch's writes on a branch forked from main now" in message
    assert ids(lh) == [0, 1, 2, 10, 11]
