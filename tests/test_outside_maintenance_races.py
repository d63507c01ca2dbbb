"""Maintenance racing writers in other processes, and writers killed between the steps of a
commit, on the embedded SQLite catalog and PostgreSQL. A writer process is held at a failpoint
(`PHLO_FAILPOINTS=NAME:pause`: after it wrote its data files and manifests, or after the
catalog swapped its pointer) while this process removes orphan files, compacts or deletes, then
resumed or killed with SIGKILL. A plain-Python model of the rows is the oracle: the table reads
as the model before or after the write, never half and never pointing at a missing file, in
phlo and in PyIceberg, and the next write succeeds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from tests.outside_support import (
    BEFORE,
    BRANCH_MERGE,
    Model,
    assert_reads,
    batch,
    held,
    next_write_succeeds,
    seeded,
)

import phlo
from phlo import errors

# The writes a child process makes, and the model each leaves.
WRITES: dict[str, tuple[str, Model]] = {
    "merge-on-read merge": (
        "lh.table('raw.t').merge(batch({5: 'A', 15: 'A', 99: 'new'}), 'id',"
        " write_mode='merge-on-read')",
        {**BEFORE, 5: "A", 15: "A", 99: "new"},
    ),
    "copy-on-write merge": (
        "lh.table('raw.t').merge(batch({5: 'A', 15: 'A', 99: 'new'}), 'id',"
        " write_mode='copy-on-write')",
        {**BEFORE, 5: "A", 15: "A", 99: "new"},
    ),
    "merge-on-read delete": (
        "lh.table('raw.t').delete(('id', '<', 3), write_mode='merge-on-read')",
        {k: v for k, v in BEFORE.items() if k >= 3},
    ),
    "compaction": ("lh.table('raw.t').compact()", BEFORE),
    "transaction": (
        "tx = lh.transaction()\n"
        "with tx:\n"
        "    tx.table('raw.t').merge(batch({5: 'A', 15: 'A', 99: 'new'}), 'id')",
        {**BEFORE, 5: "A", 15: "A", 99: "new"},
    ),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URI of an embedded SQLite or a PostgreSQL catalog."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture
def lh(catalog: str, tmp_path: Path) -> phlo.Lakehouse:
    return seeded(catalog, tmp_path)


NOW = dt.timedelta(0)


@pytest.mark.parametrize("write", list(WRITES))
@pytest.mark.parametrize("older_than", ["default", "zero"])
def test_orphan_removal_while_a_write_is_about_to_commit_never_corrupts_the_table(
    lh: phlo.Lakehouse, catalog: str, tmp_path: Path, write: str, older_than: str
) -> None:
    """The default age keeps the in-flight write's files, and it lands. An age of zero (the
    user says no write is running, wrongly) deletes them: then the write must fail with a
    typed error and leave the table as it was, never commit a snapshot missing its files."""
    after = WRITES[write][1]
    with held(lh, catalog, WRITES[write][0], "commit.after-manifests", tmp_path / "fp") as writer:
        removed = lh.remove_orphan_files(**({"older_than": NOW} if older_than == "zero" else {}))
        outcome = writer.finish()
    if older_than == "default":
        assert removed.files == []
        assert outcome == ("ok", ""), outcome
        model = after
    else:
        # The removal's cutoff is after the write started: the write fails, naming the table
        # and the cause.
        kind, message = outcome
        assert kind == errors.CommitConflictError.__name__, outcome
        assert "raw.t" in message and "remove_orphan_files" in message, outcome
        model = BEFORE
    assert_reads(lh, model, f"{write}: {outcome}")
    next_write_succeeds(lh, model)


@pytest.mark.parametrize("write", list(WRITES))
@pytest.mark.parametrize("point", ["commit.after-manifests", "commit.after-swap"])
def test_a_writer_killed_between_steps_leaves_the_old_or_the_new_table(
    lh: phlo.Lakehouse, catalog: str, tmp_path: Path, write: str, point: str
) -> None:
    after = WRITES[write][1]
    with held(lh, catalog, WRITES[write][0], point, tmp_path / "fp") as writer:
        writer.kill()
    # Before the swap nothing landed; after it (a transaction's swap is on its own branch,
    # not yet merged into main) the write did.
    landed = point == "commit.after-swap" and write != "transaction"
    model = after if landed else BEFORE
    assert_reads(lh, model, f"killed at {point}")
    # Maintenance then removes the dead writer's leftovers, and nothing the table references.
    lh.expire_snapshots(older_than=NOW, keep_last=100)
    removed = lh.remove_orphan_files(older_than=NOW)
    if point == "commit.after-manifests":
        assert removed.files, "the killed writer's data files and manifests are leftovers"
    assert_reads(lh, model, "after orphan removal")
    assert lh.remove_orphan_files(older_than=NOW).files == []
    next_write_succeeds(lh, model)


def diverged(lh: phlo.Lakehouse) -> Model:
    """dev upserts 5 and 99, main then appends 300: merging dev rebases. The merged model."""
    lh.create_branch("dev")
    lh.table("raw.t", ref="dev").merge(batch({5: "dev", 99: "dev"}), "id")
    lh.table("raw.t").append(batch({300: "main"}))
    return {**BEFORE, 5: "dev", 99: "dev", 300: "main"}


@pytest.mark.parametrize("older_than", ["default", "zero"])
def test_orphan_removal_while_a_branch_merge_is_about_to_apply_never_corrupts_main(
    lh: phlo.Lakehouse, catalog: str, tmp_path: Path, older_than: str
) -> None:
    merged = diverged(lh)
    main = {**BEFORE, 300: "main"}
    with held(lh, catalog, BRANCH_MERGE, "merge.before-apply", tmp_path / "fp") as writer:
        lh.remove_orphan_files(**({"older_than": NOW} if older_than == "zero" else {}))
        outcome = writer.finish()
    if older_than == "default":
        assert outcome == ("ok", ""), outcome
    else:
        kind, message = outcome
        assert kind == errors.CommitConflictError.__name__, outcome
        assert "raw.t" in message and "remove_orphan_files" in message, outcome
        assert_reads(lh, main, f"branch merge: {outcome}")
        # Merged again, dev's change lands.
        lh.merge("dev", "main")
    assert_reads(lh, merged, f"branch merge: {outcome}")
    next_write_succeeds(lh, merged)


@pytest.mark.parametrize("write", ["branch merge", "transaction"])
def test_a_merge_killed_after_it_applied_landed_and_maintenance_keeps_it(
    lh: phlo.Lakehouse, catalog: str, tmp_path: Path, write: str
) -> None:
    """Killed after the catalog applied the merge, before it returned (a transaction's private
    branch is left behind): main has the change, and maintenance keeps every file of it."""
    code, model = (BRANCH_MERGE, diverged(lh)) if write == "branch merge" else WRITES[write]
    with held(lh, catalog, code, "merge.after-apply", tmp_path / "fp") as writer:
        writer.kill()
    assert_reads(lh, model, f"{write} killed after it applied")
    lh.expire_snapshots(older_than=NOW, keep_last=100)
    lh.remove_orphan_files(older_than=NOW)
    assert_reads(lh, model, "after maintenance")
    next_write_succeeds(lh, model)
