"""Failures injected between the steps of every kind of commit (PHLO_FAILPOINTS), checked from
outside: merge-on-read merges and deletes, copy-on-write deletes, compaction and a two-table
transaction. An error after the catalog swapped the pointer is resolved from the commit log (the
write succeeds); an outcome that cannot be read back is `CommitStateUnknownError`. Either way
the table reads as the model of the landed write in phlo and in PyIceberg, and every file the
table references is still there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest
from tests.outside_support import sql_catalog

import phlo
from phlo import errors

Model = dict[int, str]
BEFORE: Model = {1: "a", 2: "b", 3: "c", 4: "d", 5: "e"}


def batch(model: Model) -> pa.Table:
    return pa.table({"id": pa.array(list(model), pa.int64()), "v": list(model.values())})


def upsert(lh: phlo.Lakehouse, mode: str) -> None:
    lh.table("raw.t").merge(batch({1: "A", 9: "new"}), "id", write_mode=mode)


def transaction(lh: phlo.Lakehouse) -> None:
    with lh.transaction() as tx:
        tx.table("raw.t").merge(batch({1: "A", 9: "new"}), "id")
        tx.table("raw.u").merge(batch({1: "A", 9: "new"}), "id")


UPSERTED = {**BEFORE, 1: "A", 9: "new"}
WRITES: dict[str, tuple[Callable[[phlo.Lakehouse], object], Model, Model]] = {
    # name: (the write, raw.t after it, raw.u after it)
    "merge-on-read merge": (lambda lh: upsert(lh, "merge-on-read"), UPSERTED, BEFORE),
    "copy-on-write delete": (
        lambda lh: lh.table("raw.t").delete(("id", "=", 2)),
        {k: v for k, v in BEFORE.items() if k != 2},
        BEFORE,
    ),
    "merge-on-read delete": (
        lambda lh: lh.table("raw.t").delete(("id", "=", 2), write_mode="merge-on-read"),
        {k: v for k, v in BEFORE.items() if k != 2},
        BEFORE,
    ),
    "compaction": (lambda lh: lh.table("raw.t").compact(), BEFORE, BEFORE),
    "transaction": (transaction, UPSERTED, UPSERTED),
}


def setup(root: Path) -> phlo.Lakehouse:
    """raw.t and raw.u, each BEFORE in two files."""
    lh = phlo.Lakehouse.open(root)
    lh.create_namespace("raw")
    for name in ("raw.t", "raw.u"):
        table = lh.create_table(name, {"id": pa.int64(), "v": pa.string()})
        table.append(batch({k: v for k, v in BEFORE.items() if k <= 3}))
        table.append(batch({k: v for k, v in BEFORE.items() if k > 3}))
    return lh


def assert_reads(lh: phlo.Lakehouse, name: str, model: Model) -> None:
    """phlo and PyIceberg read exactly `model`, and every file the table references exists."""
    pyi = sql_catalog(lh).load_table(name)
    for reader, table in [
        ("phlo", lh.table(name).scan().to_arrow()),
        ("pyiceberg", pyi.scan().to_arrow()),
    ]:
        assert {r["id"]: r["v"] for r in table.to_pylist()} == model, (name, reader)
        assert table.num_rows == len(model), (name, reader)
    for task in pyi.scan().plan_files():
        for file in [task.file, *task.delete_files]:
            assert Path(file.file_path.removeprefix("file://")).is_file(), file.file_path


@pytest.mark.parametrize("write", list(WRITES))
def test_an_error_after_the_swap_lands_the_write(tmp_path, monkeypatch, write):
    lh = setup(tmp_path)
    run, t_after, u_after = WRITES[write]
    monkeypatch.setenv("PHLO_FAILPOINTS", "commit.after-swap")
    run(lh)
    monkeypatch.delenv("PHLO_FAILPOINTS")
    assert_reads(lh, "raw.t", t_after)
    assert_reads(lh, "raw.u", u_after)


@pytest.mark.parametrize("write", list(WRITES))
def test_an_unknown_outcome_is_typed_and_keeps_every_referenced_file(tmp_path, monkeypatch, write):
    lh = setup(tmp_path)
    run, t_after, u_after = WRITES[write]
    head = lh.table("raw.t").current_snapshot_id
    monkeypatch.setenv("PHLO_FAILPOINTS", "commit.after-swap,commit.read-outcome")
    with pytest.raises(errors.CommitStateUnknownError, match=r"raw\.t"):
        run(lh)
    monkeypatch.delenv("PHLO_FAILPOINTS")
    if write == "transaction":
        # Its first write to its own branch is the one whose outcome is unknown: the block
        # raised, so nothing reached main.
        t_after, u_after = BEFORE, BEFORE
        assert lh.table("raw.t").current_snapshot_id == head
    assert_reads(lh, "raw.t", t_after)
    assert_reads(lh, "raw.u", u_after)
    # The table takes the next write as usual.
    lh.table("raw.t").append(batch({20: "after"}))
    assert_reads(lh, "raw.t", {**t_after, 20: "after"})


def test_an_error_after_a_transaction_merged_keeps_its_files(tmp_path, monkeypatch):
    """The transaction's branch merged into main, then the call failed: main references the
    branch's files, so they must not be discarded with the branch."""
    lh = setup(tmp_path)
    monkeypatch.setenv("PHLO_FAILPOINTS", "merge.after-apply")
    transaction(lh)
    monkeypatch.delenv("PHLO_FAILPOINTS")
    assert_reads(lh, "raw.t", UPSERTED)
    assert_reads(lh, "raw.u", UPSERTED)
    assert lh.branches() == ["main"]


def test_a_merge_whose_outcome_cannot_be_read_is_typed_and_keeps_every_file(tmp_path, monkeypatch):
    lh = setup(tmp_path)
    monkeypatch.setenv("PHLO_FAILPOINTS", "merge.after-apply,merge.read-outcome")
    with pytest.raises(errors.CommitStateUnknownError, match="kept"):
        transaction(lh)
    monkeypatch.delenv("PHLO_FAILPOINTS")
    assert_reads(lh, "raw.t", UPSERTED)
    assert_reads(lh, "raw.u", UPSERTED)
    # A branch publish the same way: landed, resolved as a success.
    lh.create_branch("dev")
    lh.table("raw.t", ref="dev").merge(batch({2: "B"}), "id")
    monkeypatch.setenv("PHLO_FAILPOINTS", "merge.after-apply")
    merged = lh.merge("dev", "main")
    monkeypatch.delenv("PHLO_FAILPOINTS")
    assert merged.fast_forwarded == ["raw.t"]
    assert_reads(lh, "raw.t", {**UPSERTED, 2: "B"})
