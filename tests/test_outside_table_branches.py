"""PyIceberg's own branches inside a phlo table's metadata (`refs`, written with
`manage_snapshots().create_branch` and `append(..., branch=...)`) beside phlo's catalog
branches: every phlo write to main — merges, a branch merge that fast-forwards or rebases, a
compaction, an expiry, a merge held while PyIceberg commits to its branch — keeps PyIceberg's
branch and what it reads, and phlo's history of main (`history()`, `phlo show`, `repr`) is
main's line of snapshots, not the branch's or those a rollback left."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from tests.outside_support import (
    BEFORE,
    Model,
    assert_reads,
    batch,
    held,
    pyiceberg,
    pyiceberg_table,
    seeded,
)

import phlo
from phlo import errors
from phlo.cli.app import main

FEATURE: Model = {**BEFORE, 100: "feat"}


def fork_feature(lh: phlo.Lakehouse) -> None:
    """PyIceberg's branch `feat` of raw.t, forked from main's head, holding key 100 more."""
    with pyiceberg_table(lh) as t:
        t.manage_snapshots().create_branch(t.current_snapshot().snapshot_id, "feat").commit()
        t.append(batch({100: "feat"}), branch="feat")


def assert_feature(lh: phlo.Lakehouse, model: Model, when: str) -> None:
    with pyiceberg_table(lh) as t:
        assert set(t.metadata.refs) == {"main", "feat"}, when
        rows = t.scan().use_ref("feat").to_arrow().to_pylist()
    assert {r["id"]: r["v"] for r in rows} == model, when


def ancestry(lh: phlo.Lakehouse) -> list[int]:
    """main's snapshots by PyIceberg, oldest first."""
    with pyiceberg_table(lh) as t:
        line, snapshot = [], t.current_snapshot()
        while snapshot is not None:
            line.append(snapshot.snapshot_id)
            parent = snapshot.parent_snapshot_id
            snapshot = t.snapshot_by_id(parent) if parent is not None else None
    return line[::-1]


def dev_merged(lh: phlo.Lakehouse, main_moves: bool) -> Model:
    lh.create_branch("dev")
    lh.table("raw.t", ref="dev").merge(batch({5: "dev", 200: "dev"}), "id")
    model = {**BEFORE, 5: "dev", 200: "dev"}
    if main_moves:
        lh.table("raw.t").append(batch({300: "main"}))
        model[300] = "main"
    assert lh.merge("dev", "main").rebased == (["raw.t"] if main_moves else [])
    return model


# phlo's write to main after PyIceberg forked `feat`: what main then holds.
WRITES: dict[str, Callable[[phlo.Lakehouse], Model]] = {
    "copy-on-write merge": lambda lh: (
        lh.table("raw.t").merge(batch({5: "m", 200: "m"}), "id", write_mode="copy-on-write"),
        {**BEFORE, 5: "m", 200: "m"},
    )[1],
    "merge-on-read merge": lambda lh: (
        lh.table("raw.t").merge(batch({5: "m", 200: "m"}), "id", write_mode="merge-on-read"),
        {**BEFORE, 5: "m", 200: "m"},
    )[1],
    "branch merge, fast-forward": lambda lh: dev_merged(lh, main_moves=False),
    "branch merge, rebase": lambda lh: dev_merged(lh, main_moves=True),
    "compaction": lambda lh: (lh.table("raw.t").compact(), BEFORE)[1],
    "expiry": lambda lh: (
        lh.expire_snapshots(older_than=dt.timedelta(0), keep_last=1),
        BEFORE,
    )[1],
}


@pytest.mark.parametrize("write", list(WRITES))
def test_phlo_writes_to_main_keep_pyiceberg_branch_and_its_rows(tmp_path: Path, write: str) -> None:
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    fork_feature(lh)
    model = WRITES[write](lh)
    assert_reads(lh, model, write)
    assert_feature(lh, FEATURE, write)
    # PyIceberg's branch still takes commits, and phlo's next write keeps them.
    pyiceberg(lh, lambda t: t.append(batch({101: "feat"}), branch="feat"))
    lh.table("raw.t").merge(batch({0: "next"}), "id")
    assert_reads(lh, {**model, 0: "next"}, f"{write}, then the next write")
    assert_feature(lh, {**FEATURE, 101: "feat"}, f"{write}, then the next write")


@pytest.mark.parametrize("mode", ["copy-on-write", "merge-on-read"])
def test_a_held_phlo_merge_keeps_what_pyiceberg_committed_to_its_branch_meanwhile(
    tmp_path: Path, mode: str
) -> None:
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    lh = seeded(catalog, tmp_path)
    fork_feature(lh)
    code = f"lh.table('raw.t').merge(batch({{5: 'm', 200: 'm'}}), 'id', write_mode='{mode}')"
    with held(lh, catalog, code, "commit.after-manifests", tmp_path / "fp") as writer:
        pyiceberg(lh, lambda t: t.append(batch({101: "feat"}), branch="feat"))
        assert writer.finish() == ("ok", "")
    assert_reads(lh, {**BEFORE, 5: "m", 200: "m"}, "after the held merge")
    assert_feature(lh, {**FEATURE, 101: "feat"}, "after the held merge")


def show(lh: phlo.Lakehouse) -> list[dict]:
    result = CliRunner().invoke(main, ["--root", str(lh.root), "show", "raw.t", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["history"]


def test_history_is_mains_line_not_pyiceberg_branch_nor_what_a_rollback_left(
    tmp_path: Path,
) -> None:
    lh = phlo.Lakehouse.open(tmp_path / "lake")
    lh.create_namespace("raw")
    table = lh.create_table("raw.t", {"id": pa.int64(), "v": pa.string()})
    for start in (0, 10, 20):
        table.append(batch({k: "a" for k in range(start, start + 10)}))
    fork_feature(lh)  # newer than main's head: a history of all snapshots ends with it
    check_history(lh, "after PyIceberg's branch commit")
    # PyIceberg rolls main back to its first snapshot, then appends: the snapshots rolled back
    # stay in the metadata, and are newer than main's new line.
    with pyiceberg_table(lh) as t:
        t.manage_snapshots().rollback_to_snapshot(ancestry(lh)[0]).commit()
    pyiceberg(lh, lambda t: t.append(batch({500: "b"})))
    check_history(lh, "after a rollback")


def check_history(lh: phlo.Lakehouse, when: str) -> None:
    table, line = lh.table("raw.t"), ancestry(lh)
    history = table.history()
    assert [s.snapshot_id for s in history] == line, when
    assert [s["snapshot_id"] for s in show(lh)] == line, when
    rows = int(history[-1].summary["total-records"])
    assert rows == table.scan().to_arrow().num_rows, when
    assert f"snapshots={len(line)}," in repr(table), when


def test_time_travel_reads_what_main_held_then_across_a_pyiceberg_rollback(tmp_path: Path) -> None:
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    fork_feature(lh)
    times = {}
    with pyiceberg_table(lh) as t:
        head = t.current_snapshot()
        assert head is not None
        times["30 rows"] = head.timestamp_ms + 1
        t.manage_snapshots().rollback_to_snapshot(t.history()[0].snapshot_id).commit()
    with pyiceberg_table(lh) as t:
        times["10 rows, rolled back"] = t.metadata.snapshot_log[-1].timestamp_ms
    pyiceberg(lh, lambda t: t.append(batch({400: "py"})))
    lh.table("raw.t").append(batch({401: "phlo"}))
    times["12 rows"] = lh.table("raw.t").history()[-1].timestamp.timestamp() * 1000
    with pyiceberg_table(lh) as t:
        for when, ms in times.items():
            theirs = t.snapshot_as_of_timestamp(int(ms))
            assert theirs is not None
            as_of = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
            scan = lh.table("raw.t").scan(as_of=as_of)
            assert scan.snapshot_id == theirs.snapshot_id, when
            rows = scan.to_arrow().num_rows
            assert rows == t.scan(snapshot_id=theirs.snapshot_id).to_arrow().num_rows, when
            assert f"{rows} rows" == when.split(",")[0], when
            pinned = lh.table("raw.t", as_of=as_of)
            assert pinned.current_snapshot_id == theirs.snapshot_id, when
            assert pinned.history()[-1].snapshot_id == theirs.snapshot_id, when
            assert f"rows={rows}," in repr(pinned), when


def test_time_travel_refuses_a_time_whose_snapshot_pyiceberg_expired(tmp_path: Path) -> None:
    """PyIceberg's expiry of the middle snapshot drops its snapshot-log entry (Java's drops the
    whole log before it): the time it was current is refused, not read as the one before (when
    in the gap it began is not recorded, so the whole gap is refused)."""
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    first, middle, last = lh.table("raw.t").history()
    at = {s.snapshot_id: s.timestamp for s in (first, middle, last)}
    pyiceberg(lh, lambda t: t.maintenance.expire_snapshots().by_id(middle.snapshot_id).commit())
    table = lh.table("raw.t")
    assert table.scan(as_of=at[last.snapshot_id]).to_arrow().num_rows == 30
    for then in (at[first.snapshot_id], at[middle.snapshot_id]):
        with pytest.raises(errors.InputError, match="expired"):
            table.scan(as_of=then).to_arrow()
    with pytest.raises(errors.InputError, match="expired"):
        lh.table("raw.t", as_of=at[middle.snapshot_id])
