"""Write-Audit-Publish primitives (phlo.wap): run branches, idempotent promotion, cleanup."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from phlo import errors, wap


def rows(keys, value=1.0):
    return pa.table({"id": [f"k{k:05d}" for k in keys], "v": [float(value)] * len(keys)})


@pytest.fixture
def events(lh):
    table = lh.create_table("raw.events", {"id": pa.string(), "v": pa.float64()})
    table.append(rows(range(10)))
    return table


def ids(lh, ref="main"):
    return sorted(lh.table("raw.events", ref).scan().to_arrow().column("id").to_pylist())


def test_run_branch_is_created_once_and_written_in_isolation(lh, events):
    branch = wap.ensure_run_branch(lh, "r1")
    assert branch == "pipeline-run-r1"
    assert wap.ensure_run_branch(lh, "r1") == branch  # idempotent
    lh.table("raw.events", branch).append(rows(range(10, 15)))
    assert len(ids(lh)) == 10
    assert len(ids(lh, branch)) == 15


def test_promote_publishes_every_table_in_one_merge(lh, events):
    other = lh.create_table("raw.other", {"id": pa.string(), "v": pa.float64()})
    other.append(rows(range(3)))
    branch = wap.ensure_run_branch(lh, "r2")
    lh.table("raw.events", branch).append(rows(range(10, 12)))
    lh.table("raw.other", branch).merge(rows(range(2), 5.0), "id")
    promotion = wap.promote(lh, "r2")
    assert promotion.status == "published"
    assert sorted(promotion.tables) == ["raw.events", "raw.other"]
    entries = [e for e in lh.log("main", 50) if e.properties.get("wap.published") == "r2"]
    assert len(entries) == 1 and entries[0].run_id == "r2"
    assert branch not in lh.branches()
    assert len(ids(lh)) == 12
    assert lh.table("raw.other").scan().to_arrow().column("v").to_pylist().count(5.0) == 2


def test_promotion_crash_after_the_merge_does_not_merge_twice(lh, events, monkeypatch):
    """The merge lands, then the process dies before the branch is deleted; promoting again
    must find the earlier merge instead of re-applying the branch (which would duplicate the
    rebased rows, since main moved)."""
    branch = wap.ensure_run_branch(lh, "r3")
    lh.table("raw.events", branch).append(rows(range(100, 105)))
    events.append(rows(range(200, 202)))  # main moves: the promotion rebases
    real_delete = type(lh).delete_branch

    def crash(self, name):
        raise OSError("killed between merge and cleanup")

    monkeypatch.setattr(type(lh), "delete_branch", crash)
    with pytest.raises(OSError):
        wap.promote(lh, "r3")
    monkeypatch.setattr(type(lh), "delete_branch", real_delete)
    assert branch in lh.branches()
    assert len(ids(lh)) == 17
    again = wap.promote(lh, "r3")
    assert again.status == "already_published"
    assert again.commit is not None and again.commit.properties["wap.published"] == "r3"
    assert len(ids(lh)) == 17  # not 22
    assert branch not in lh.branches()
    assert wap.promote(lh, "r3").status == "already_published"


def test_promote_without_a_branch_is_a_no_op(lh, events):
    assert wap.promote(lh, "never-ran").status == "no_branch"
    assert len(ids(lh)) == 10


def test_conflicting_promotion_keeps_target_and_branch(lh, events):
    branch = wap.ensure_run_branch(lh, "r4")
    lh.table("raw.events", branch).merge(rows(range(5), 2.0), "id")
    events.merge(rows(range(5), 3.0), "id")  # the same keys change on main meanwhile
    before = lh.table("raw.events").current_snapshot_id
    with pytest.raises(errors.CommitConflictError):
        wap.promote(lh, "r4")
    assert lh.table("raw.events").current_snapshot_id == before
    assert branch in lh.branches()
    assert wap.find_promotion(lh, "r4") is None


def test_cleanup_respects_retention_and_the_callers_veto(lh, events):
    for run in ("old-done", "old-running", "new-done"):
        wap.ensure_run_branch(lh, run)
    created = wap.run_branches(lh)
    assert set(created) == {"old-done", "old-running", "new-done"}
    later = created["new-done"] + dt.timedelta(hours=25)
    asked = []

    def removable(run_id):
        asked.append(run_id)
        return run_id != "old-running"

    # Within the retention nothing is removed, and the caller is not even asked.
    assert wap.cleanup(lh, dt.timedelta(hours=24), removable=removable) == []
    assert asked == []
    deleted = wap.cleanup(lh, dt.timedelta(hours=24), removable=removable, now=later)
    assert sorted(deleted) == ["pipeline-run-new-done", "pipeline-run-old-done"]
    assert "pipeline-run-old-running" in lh.branches()
    assert "main" in lh.branches() and len(ids(lh)) == 10


def test_run_ids_are_checked(lh):
    with pytest.raises(errors.InputError, match="run_id"):
        wap.run_branch(None)  # type: ignore[arg-type]
