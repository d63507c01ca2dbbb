"""Metadata housekeeping other engines rely on. `write.metadata.delete-after-commit.enabled`
with `write.metadata.previous-versions-max`: phlo's commits delete the metadata files that
fall out of the table's `metadata-log`, as PyIceberg's and Java's do, but keep those a phlo
branch or tag still uses (PyIceberg's would delete them too: docs/maintenance.md). Orphan
removal keeps every file a `metadata-log` lists, and phlo's expiry leaves `snapshot-log` and
`refs` that PyIceberg and DuckDB time-travel over. A phlo branch whose fork point PyIceberg's
expiry removed still merges what can be merged without it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pytest
from tests.duckdb_support import duckdb_rest
from tests.outside_support import batch as rows
from tests.outside_support import duckdb, held, seeded, sql_catalog

import phlo
from phlo.catalog_server import CatalogServer
from phlo.errors import CommitConflictError

HOUSEKEEPING = {
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "2",
}


def batch(ids: range) -> pa.Table:
    return pa.table({"id": pa.array(list(ids), pa.int64())})


def metadata_files(lh: phlo.Lakehouse) -> set[str]:
    folder = Path(lh.table("raw.t").metadata_location.removeprefix("file://")).parent
    return {f"file://{p}" for p in folder.glob("*.metadata.json")}


def metadata_log(lh: phlo.Lakehouse, ref: str = "main", name: str = "raw.t") -> list[str]:
    location = lh.table(name, ref=ref).metadata_location
    metadata = json.loads(Path(location.removeprefix("file://")).read_text())
    return [entry["metadata-file"] for entry in metadata["metadata-log"]]


def ids(lh: phlo.Lakehouse, ref: str = "main") -> list[int]:
    return sorted(lh.table("raw.t", ref=ref).scan().to_arrow().column("id").to_pylist())


def test_metadata_files_leave_with_the_log_but_those_branches_and_tags_use_stay(lh):
    table = lh.create_table("raw.t", {"id": pa.int64()})
    table.append(batch(range(0, 2)))
    lh.create_tag("first", "main")
    lh.create_branch("dev")
    tag_file = lh.table("raw.t", ref="first").metadata_location
    table.set_properties(HOUSEKEEPING)
    dev = lh.table("raw.t", ref="dev")
    dev.append(batch(range(100, 101)))
    for start in range(2, 10, 2):
        table.append(batch(range(start, start + 2)))
    # Through `phlo catalog serve`, which writes the metadata of its REST clients' commits.
    duckdb(lh, "INSERT INTO lake.raw.t VALUES (10), (11)")
    # main holds its current file and the two its log lists, plus the tag's (also dev's fork
    # point), dev's own and those dev's log lists; the other versions of main are gone.
    kept = {lh.table("raw.t").metadata_location, *metadata_log(lh)}
    used = {tag_file, lh.table("raw.t", ref="dev").metadata_location, *metadata_log(lh, "dev")}
    assert len(metadata_log(lh)) == 2
    assert metadata_files(lh) == kept | used
    assert ids(lh, "first") == [0, 1]
    assert ids(lh, "dev") == [0, 1, 100]
    lh.merge("dev", "main")
    assert ids(lh) == [*range(12), 100]
    assert sorted(sql_catalog(lh).load_table("raw.t").scan().to_arrow()["id"].to_pylist()) == ids(
        lh
    )


def test_without_the_property_every_version_stays(lh):
    table = lh.create_table("raw.t", {"id": pa.int64()})
    table.set_properties({"write.metadata.previous-versions-max": "1"})
    for start in range(0, 6, 2):
        table.append(batch(range(start, start + 2)))
    assert len(metadata_log(lh)) == 1
    assert len(metadata_files(lh)) == 5


def test_pyiceberg_time_travel_over_what_phlo_maintenance_keeps(lh):
    table = lh.create_table("raw.t", {"id": pa.int64()})
    for start in range(0, 8, 2):
        table.append(batch(range(start, start + 2)))
    pyi = sql_catalog(lh).load_table("raw.t")
    [first, *_] = sorted(pyi.snapshots(), key=lambda s: s.sequence_number)
    pyi.manage_snapshots().create_tag(first.snapshot_id, "first").commit()
    # Another engine's commits add to the metadata log; orphan removal keeps every file it lists.
    before = metadata_files(lh)
    lh.expire_snapshots(older_than=dt.timedelta(0), keep_last=2)
    lh.remove_orphan_files(older_than=dt.timedelta(0))
    assert set(metadata_log(lh)) <= metadata_files(lh)
    assert before <= metadata_files(lh)
    pyi = sql_catalog(lh).load_table("raw.t")
    # The first and the newest two stay; the log restarts after the expired second one.
    assert len(pyi.snapshots()) == 3
    history = [h.snapshot_id for h in pyi.history()]
    assert all(pyi.snapshot_by_id(s) is not None for s in history)
    assert history[-1] == pyi.current_snapshot().snapshot_id
    for snapshot_id in history:
        count = len(pyi.scan(snapshot_id=snapshot_id).to_arrow())
        seq = pyi.snapshot_by_id(snapshot_id).sequence_number
        assert count == 2 * seq, snapshot_id
    tagged = pyi.snapshot_by_name("first").snapshot_id
    assert len(pyi.scan(snapshot_id=tagged).to_arrow()) == 2
    with CatalogServer(lh, port=0) as server:
        at_tag, now = duckdb_rest(
            server.uri,
            "main",
            [
                f"SELECT count(*) FROM lake.raw.t AT (VERSION => {tagged})",
                "SELECT count(*) FROM lake.raw.t",
            ],
        )
    assert (at_tag, now) == ([[2]], [[8]])


def pyiceberg_appends_and_expires_all_but_its_head(lh: phlo.Lakehouse) -> None:
    for start in (10, 11):
        sql_catalog(lh).load_table("raw.t").append(batch(range(start, start + 1)))
    table = sql_catalog(lh).load_table("raw.t")
    table.maintenance.expire_snapshots().older_than(dt.datetime.now(dt.UTC)).commit()
    assert len(sql_catalog(lh).load_table("raw.t").snapshots()) == 1


def test_a_branch_whose_fork_point_pyiceberg_expired_merges_appends_refuses_upserts(lh):
    """PyIceberg's expiry drops the fork point of phlo's branches and the parent ids after it:
    what main did since cannot be told apart. The branch's appends still land on it (they
    commute with anything); its upserts are a conflict that says to re-run them on a branch
    forked from main now (a retry of the merge could never check them)."""
    table = lh.create_table("raw.t", {"id": pa.int64()})
    table.append(batch(range(0, 3)))
    lh.create_branch("appends")
    lh.create_branch("upserts")
    pyiceberg_appends_and_expires_all_but_its_head(lh)
    lh.table("raw.t", ref="appends").append(batch(range(20, 22)))
    lh.table("raw.t", ref="upserts").merge(batch(range(2, 4)), "id")
    lh.merge("appends", "main")
    assert ids(lh) == [0, 1, 2, 10, 11, 20, 21]
    with pytest.raises(CommitConflictError, match="cannot merge upserts into main") as failure:
        lh.merge("upserts", "main")
    assert "no longer leads back" in str(failure.value)
    assert "re-run the branch's writes on a branch forked from main now" in str(failure.value)
    assert ids(lh) == [0, 1, 2, 10, 11, 20, 21]
    lh.create_branch("again")
    lh.table("raw.t", ref="again").merge(batch(range(2, 4)), "id")
    lh.merge("again", "main")
    assert ids(lh) == [0, 1, 2, 3, 10, 11, 20, 21]


def test_a_rename_on_main_keeps_the_files_the_old_name_on_a_branch_uses(lh, tmp_path):
    """A rename moves one ref's pointer only: `dev` still reads the table under its old name
    from metadata files main's renamed table goes on logging (and dropping)."""
    table = lh.create_table("raw.t", {"id": pa.int64()})
    table.set_properties(HOUSEKEEPING)
    table.append(batch(range(0, 2)))
    lh.create_branch("dev")
    catalog = sql_catalog(lh)
    catalog.rename_table("raw.t", "raw.u")
    catalog.engine.dispose()
    for start in range(2, 10, 2):
        lh.table("raw.u").append(batch(range(start, start + 2)))
    on_dev = lh.table("raw.t", ref="dev").metadata_location
    assert on_dev not in metadata_log(lh, name="raw.u")
    assert Path(on_dev.removeprefix("file://")).exists()
    # A new process, whose metadata cache does not hold the file.
    assert ids(phlo.Lakehouse.open(tmp_path), "dev") == [0, 1]


def test_a_read_overtaken_by_commits_that_delete_its_metadata_file_reads_the_newer(tmp_path):
    """A reader that read the pointer just before other commits dropped (and deleted) the
    metadata file it names loads the version the pointer names now."""
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    lh = seeded(catalog, tmp_path)
    lh.table("raw.t").set_properties(HOUSEKEEPING)
    read = "assert len(lh.table('raw.t').scan().to_arrow()) == 33"
    with held(lh, catalog, read, "load.after-pointer", tmp_path / "fp") as reader:
        first = lh.table("raw.t").metadata_location
        for i in range(3):
            lh.table("raw.t").append(rows({100 + i: "new"}))
        assert not Path(first.removeprefix("file://")).exists()
        assert reader.finish() == ("ok", "")
