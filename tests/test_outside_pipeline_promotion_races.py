"""Two promotions of the same run at once (the promotion sensor and a manual `promote`, or a
sensor tick seen twice), from outside: whichever way they interleave, the run is published
once, both report it published, and neither fails. The interleavings are forced: one
promotion is held at a chosen step of its own lakehouse while the other runs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

import phlo
from phlo import wap

TIMEOUT = 120


def a_run(root) -> phlo.Lakehouse:
    lh = phlo.Lakehouse.open(root)
    lh.create_namespace("raw")
    lh.create_table("raw.t", {"id": pa.int64()}).append(pa.table({"id": [0]}))
    branch = wap.ensure_run_branch(lh, "r1")
    lh.table("raw.t", branch).append(pa.table({"id": [1, 2]}))
    return lh


def hold(
    lh: phlo.Lakehouse, method: str, *, before: bool
) -> tuple[threading.Event, threading.Event]:
    """Holds the first call of `lh.<method>` (before or after it ran): ``(reached, go)``."""
    original: Callable[..., Any] = getattr(lh, method)
    reached, go = threading.Event(), threading.Event()
    first = threading.Lock()

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before and first.acquire(blocking=False):
            reached.set()
            assert go.wait(TIMEOUT)
        out = original(*args, **kwargs)
        if not before and first.acquire(blocking=False):
            reached.set()
            assert go.wait(TIMEOUT)
        return out

    setattr(lh, method, wrapper)
    return reached, go


@pytest.mark.parametrize(
    ("method", "before"),
    [
        ("branches", False),  # held after seeing the branch, before merging it
        ("delete_branch", True),  # held after its merge, before removing the branch
        ("merge", True),  # held just before merging
    ],
)
def test_two_promotions_of_one_run_publish_it_once(tmp_path, method, before):
    lh = a_run(tmp_path)
    held_lh = phlo.Lakehouse.open(tmp_path)
    reached, go = hold(held_lh, method, before=before)
    outcome: dict[str, object] = {}

    def promote_held() -> None:
        try:
            outcome["held"] = wap.promote(held_lh, "r1").status
        except Exception as e:  # judged below
            outcome["held"] = e

    thread = threading.Thread(target=promote_held, daemon=True)
    thread.start()
    assert reached.wait(TIMEOUT)
    other = wap.promote(lh, "r1")
    go.set()
    thread.join(TIMEOUT)
    statuses = {other.status, outcome["held"]}
    assert statuses <= {"published", "already_published"}, statuses
    assert "published" in statuses
    assert sorted(lh.table("raw.t").to_arrow().column("id").to_pylist()) == [0, 1, 2]
    assert lh.branches() == ["main"]
    merges = [e for e in lh.log("main", 100) if e.properties.get("wap.published") == "r1"]
    assert len(merges) >= 1


def test_a_promotion_merging_a_branch_another_one_just_merged_appends_nothing_twice(tmp_path):
    """The held one saw the branch before the other merged it (the other is then held before
    removing it) and main moved meanwhile: its merge finds nothing new on the branch."""
    lh = a_run(tmp_path)
    lh.create_branch("other")
    lh.table("raw.t", "other").append(pa.table({"id": [7]}))
    late, early = phlo.Lakehouse.open(tmp_path), phlo.Lakehouse.open(tmp_path)
    late_reached, late_go = hold(late, "branches", before=False)
    early_reached, early_go = hold(early, "delete_branch", before=True)
    outcome: dict[str, object] = {}

    def promote(name: str, lakehouse: phlo.Lakehouse) -> None:
        outcome[name] = wap.promote(lakehouse, "r1").status

    threads = [
        threading.Thread(target=promote, args=(name, lakehouse), daemon=True)
        for name, lakehouse in (("late", late), ("early", early))
    ]
    threads[0].start()
    assert late_reached.wait(TIMEOUT)
    threads[1].start()
    assert early_reached.wait(TIMEOUT)  # merged, about to remove the branch
    lh.merge("other")  # main moves
    late_go.set()
    threads[0].join(TIMEOUT)
    early_go.set()
    threads[1].join(TIMEOUT)
    assert set(outcome.values()) <= {"published", "already_published"}, outcome
    assert sorted(lh.table("raw.t").to_arrow().column("id").to_pylist()) == [0, 1, 2, 7]
    assert lh.branches() == ["main", "other"]
