"""Time travel by commit, tables created on branches, commit metadata, and branch-aware
maintenance (snapshot expiry, orphan removal) on a real lakehouse folder."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from pyiceberg.catalog.sql import SqlCatalog
from tests.conftest import EVENTS_SCHEMA, make_events

import process_support
from phlo import errors
from phlo.cli import main as cli

FUTURE = dt.timedelta(seconds=-60)  # an age that makes every file "old enough"


def ids(table) -> list[int]:
    return sorted(table.scan(columns=["id"]).to_arrow().column("id").to_pylist())


def test_time_travel_by_commit_and_by_time(lh, events_table):
    events_table.append(make_events(0, 5), message="first load", author="etl")
    first = lh.log("main", limit=1)[0]
    assert (first.message, first.author) == ("first load", "etl")
    time.sleep(0.01)  # time travel by time resolves milliseconds (documented)
    events_table.merge(make_events(3, 5), "id")

    past = lh.table("raw.events", as_of=first)
    assert ids(past) == list(range(5))
    assert ids(lh.table("raw.events", as_of=first.commit_id)) == list(range(5))
    assert ids(lh.table("raw.events", as_of=first.timestamp)) == list(range(5))
    assert ids(events_table) == list(range(8))
    assert past.current_snapshot_id == events_table.history()[0].snapshot_id
    # A table opened in the past is read-only, and says how to write.
    with pytest.raises(errors.InputError, match="read-only"):
        past.append(make_events(100, 1))
    with pytest.raises(errors.InputError, match="read-only"):
        past.merge(make_events(100, 1), "id")
    assert ids(events_table) == list(range(8))
    # Bad points in time are clear errors.
    with pytest.raises(errors.InputError, match="not in the log"):
        lh.table("raw.events", as_of="no-such-commit")
    lh.create_branch("dev")
    with pytest.raises(errors.InputError, match="made on main"):
        lh.table("raw.events", ref="dev", as_of=first)
    with pytest.raises(errors.InputError, match="no snapshot"):
        lh.table("raw.events", as_of=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))


def test_commit_metadata_reaches_the_log_and_the_snapshot(lh, events_table):
    result = events_table.append(
        make_events(0, 2), message="load", author="alice", properties={"source": "api"}
    )
    entry = lh.log("main", limit=1)[0]
    assert (entry.message, entry.author, entry.properties) == ("load", "alice", {"source": "api"})
    summary = events_table.history()[-1].summary
    assert summary["phlo.author"] == "alice" and summary["source"] == "api"
    assert result.rows == 2
    with lh.transaction(message="nightly", author="bob", properties={"run": "7"}) as tx:
        tx.table("raw.events").append(make_events(10, 1))
    merge = lh.log("main", limit=1)[0]
    assert (merge.message, merge.author, merge.properties) == ("nightly", "bob", {"run": "7"})
    assert merge.tables == ["raw.events"]


def test_a_table_created_on_a_branch_lands_with_the_merge(lh):
    lh.create_branch("run-1")
    table = lh.create_table("raw.fresh", EVENTS_SCHEMA, ref="run-1")
    assert table.ref == "run-1"
    table.append(make_events(0, 4))
    with pytest.raises(errors.NoSuchTableError):
        lh.table("raw.fresh")
    assert lh.merge("run-1").added == ["raw.fresh"]
    assert ids(lh.table("raw.fresh")) == list(range(4))
    pyi = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table("raw.fresh")
    assert pyi.scan().to_arrow().num_rows == 4
    with pytest.raises(errors.TableAlreadyExistsError):
        lh.create_table("raw.fresh", EVENTS_SCHEMA, ref="run-1")
    with pytest.raises(errors.InputError, match="tag"):
        lh.create_tag("v1")
        lh.create_table("raw.other", EVENTS_SCHEMA, ref="v1")
    with pytest.raises(errors.InputError, match="still on"):
        lh.drop_table("raw.fresh", purge=True)
    lh.drop_table("raw.fresh", ref="run-1")
    assert ids(lh.table("raw.fresh")) == list(range(4))


def _files(root: Path) -> set[Path]:
    return {p for p in (root / "warehouse").rglob("*") if p.is_file()}


def test_expiry_and_orphan_removal_keep_every_ref_readable(lh, events_table):
    for i in range(4):
        events_table.append(make_events(i * 10, 10))
    lh.create_branch("dev")
    lh.table("raw.events", ref="dev").append(make_events(100, 3))
    lh.create_tag("v1")
    events_table.append(make_events(50, 2))
    events_table.merge(make_events(0, 5), "id")  # rewrites files the tag still reads
    before = {"main": ids(events_table), "dev": ids(lh.table("raw.events", ref="dev"))}
    tagged = ids(lh.table("raw.events", ref="v1"))

    result = lh.expire_snapshots(older_than=FUTURE, keep_last=1)
    assert "raw.events@main" in result.refs_rewritten
    # main drops 5 of 6 snapshots, but the tag keeps the first 4 (and their files): only what
    # the append after the tag wrote for itself (its manifest list) goes.
    assert result.snapshots_expired >= 5 and result.files_deleted > 0
    assert len(events_table.history()) == 1
    assert ids(events_table) == before["main"]
    assert ids(lh.table("raw.events", ref="dev")) == before["dev"]
    assert ids(lh.table("raw.events", ref="v1")) == tagged
    pyi = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table("raw.events")
    assert pyi.scan().to_arrow().num_rows == len(before["main"])

    # A crashed write's leftovers are orphans; referenced files never are.
    day_dir = next((lh.root / "warehouse/raw.db/events/data").iterdir())
    stray = day_dir / "leftover.parquet"
    stray.write_bytes(b"partial")
    files = _files(lh.root)
    dry = lh.remove_orphan_files(older_than=FUTURE, dry_run=True)
    assert dry.files == [f"file://{stray}"] and not dry.deleted
    assert _files(lh.root) == files
    assert lh.remove_orphan_files().files == []  # default age: recent files stay
    assert lh.remove_orphan_files(older_than=FUTURE).files == [f"file://{stray}"]
    assert not stray.exists()
    for ref, expected in (*before.items(), ("v1", tagged)):
        assert ids(lh.table("raw.events", ref=ref)) == expected
    # dev still merges (rebase needs its history back to the fork, which was kept).
    assert lh.merge("dev").rebased == ["raw.events"]
    with pytest.raises(errors.InputError, match="keep_last"):
        lh.expire_snapshots(keep_last=0)


def test_cli_time_travel_and_maintenance(lh, events_table):
    events_table.append(make_events(0, 3))
    commit = lh.log("main", limit=1)[0].commit_id
    events_table.append(make_events(3, 3))
    runner = CliRunner()
    root = ["--root", str(lh.root)]
    out = runner.invoke(cli, [*root, "log", "-n", "1"])
    assert out.exit_code == 0 and "append raw.events" in out.output
    out = runner.invoke(cli, [*root, "head", "raw.events", "--as-of", commit, "-n", "10"])
    assert out.exit_code == 0, out.output
    assert out.output.count("'id'") == 3
    out = runner.invoke(cli, [*root, "maintain", "expire", "--older-than", "0s"])
    assert out.exit_code == 0 and "expired 1 snapshots" in out.output, out.output
    out = runner.invoke(cli, [*root, "maintain", "orphans", "--older-than", "0s", "--dry-run"])
    assert out.exit_code == 0 and "would delete 0 orphan files" in out.output, out.output
    out = runner.invoke(cli, [*root, "maintain", "expire", "--older-than", "soon"])
    assert out.exit_code != 0 and "not an age" in out.output


def test_a_transaction_can_create_tables_that_land_only_if_it_commits(lh, events_table):
    with pytest.raises(RuntimeError):
        with lh.transaction() as tx:
            tx.create_table("raw.first_run", EVENTS_SCHEMA).append(make_events(0, 3))
            raise RuntimeError("the run failed")
    with pytest.raises(errors.NoSuchTableError):
        lh.table("raw.first_run")
    with lh.transaction(message="first run") as tx:
        tx.create_table("raw.first_run", EVENTS_SCHEMA).append(make_events(0, 3))
        tx.table("raw.events").append(make_events(10, 2))
    assert tx.result is not None and tx.result.added == ["raw.first_run"]
    assert ids(lh.table("raw.first_run")) == [0, 1, 2]
    assert ids(events_table) == [10, 11]


def _append_and_merge(root: str, out) -> None:
    import phlo

    table = phlo.Lakehouse.open(root).table("raw.events")
    for i in range(8):
        table.append(make_events(1000 + i * 10, 10))
        table.merge(make_events(i, 1), "id")  # rewrites a file: removes what old snapshots read
    out.put("done")


def test_expiry_while_another_process_writes_loses_nothing(lh, events_table):

    events_table.append(make_events(0, 10))
    ctx = process_support.context()
    out = ctx.Queue()
    writer = ctx.Process(target=_append_and_merge, args=(str(lh.root), out))
    writer.start()
    expired = 0
    while writer.is_alive() and out.empty():
        expired += lh.expire_snapshots(older_than=FUTURE, keep_last=1).snapshots_expired
        assert len(ids(events_table)) >= 10  # every state the writer committed reads whole
    assert out.get(timeout=120) == "done"
    writer.join(timeout=60)
    expired += lh.expire_snapshots(older_than=FUTURE, keep_last=1).snapshots_expired
    assert expired > 0
    assert ids(events_table) == sorted([*range(10), *range(1000, 1080)])
    assert len(events_table.history()) == 1
    # Nothing still referenced was deleted: PyIceberg reads the whole table.
    pyi = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table("raw.events")
    assert pyi.scan().to_arrow().num_rows == 90


def test_time_travel_to_a_merge_and_to_a_commit_that_did_not_touch_the_table(lh, events_table):
    events_table.append(make_events(0, 2))
    lh.create_branch("dev")
    branch_created = lh.log("dev", limit=1)[0]
    time.sleep(0.01)  # time travel by time resolves milliseconds (documented)
    lh.table("raw.events", ref="dev").append(make_events(10, 3))
    lh.merge("dev")
    merge = lh.log("main", limit=1)[0]
    assert merge.message.startswith("merge dev into main")
    events_table.append(make_events(20, 1))
    assert ids(lh.table("raw.events", as_of=merge)) == [0, 1, 10, 11, 12]
    # The branch's creation changed no table: the table as it was then, on that branch.
    then = lh.table("raw.events", as_of=branch_created)
    assert then.ref == "dev" and ids(then) == [0, 1]


def test_maintenance_refuses_a_bad_cutoff(lh, events_table):
    with pytest.raises(errors.InputError, match="older_than"):
        lh.expire_snapshots(older_than="yesterday")  # type: ignore[arg-type]
    with pytest.raises(errors.InputError, match="older_than"):
        lh.remove_orphan_files(older_than=5)  # type: ignore[arg-type]
