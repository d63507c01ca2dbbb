"""Time travel over a table another engine replaced: removing `main` and writing again (the
shape of Java's `REPLACE TABLE`; PyIceberg's `manage_snapshots().remove_branch("main")`)
starts a new lineage, a snapshot without a parent, logged after the old head. A time between
the two is answered as PyIceberg's `snapshot_as_of_timestamp` answers it, not refused as a gap
left by expiry. A gap PyIceberg's expiry did leave is still refused (PyIceberg itself answers
it with the older snapshot, which the table did not hold then)."""

from __future__ import annotations

import pytest
from pyiceberg.table import Table
from tests.outside_support import BEFORE, batch, pyiceberg, pyiceberg_table, seeded

import phlo
from phlo.errors import InputError


def replaced(lh: phlo.Lakehouse) -> None:
    """PyIceberg replaces raw.t's rows by a new lineage: main removed, then one append."""

    def replace(t: Table) -> None:
        t.manage_snapshots().remove_branch("main").commit()
        t.append(batch({100: "new"}))

    pyiceberg(lh, replace)


def answers(lh: phlo.Lakehouse) -> list[tuple[int, int | None, int | str]]:
    """For each time the snapshot log names: (ms, PyIceberg's snapshot, phlo's snapshot or
    its refusal)."""
    with pyiceberg_table(lh) as t:
        expected = [
            (
                e.timestamp_ms,
                getattr(t.snapshot_as_of_timestamp(e.timestamp_ms), "snapshot_id", None),
            )
            for e in t.history()
        ]
    found = []
    for ms, theirs in expected:
        try:
            ours: int | str = lh.table("raw.t", as_of=ms).current_snapshot_id or -1
        except InputError as e:
            ours = str(e)
        found.append((ms, theirs, ours))
    return found


def test_time_travel_across_a_new_lineage_answers_as_pyiceberg_does(tmp_path):
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    old_head = lh.table("raw.t").current_snapshot_id
    replaced(lh)
    with pyiceberg_table(lh) as t:
        root = t.current_snapshot()
        assert root.parent_snapshot_id is None, "a new lineage"
    found = answers(lh)
    assert [ours for _, _, ours in found] == [theirs for _, theirs, _ in found], found
    assert old_head in [ours for _, _, ours in found]
    just_before = lh.table("raw.t", as_of=root.timestamp_ms - 1)
    assert just_before.current_snapshot_id == old_head
    assert sorted(just_before.scan().to_arrow().column("id").to_pylist()) == sorted(BEFORE)
    assert lh.table("raw.t").scan().to_arrow().column("id").to_pylist() == [100]


def test_a_gap_pyicebergs_expiry_left_is_still_refused(tmp_path):
    """The old lineage's head expired (the first snapshot kept by a tag): the time it was
    current is refused — PyIceberg answers the first snapshot, which the table did not hold
    then."""
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    with pyiceberg_table(lh) as t:
        first, *_, head = t.history()
    pyiceberg(lh, lambda t: t.manage_snapshots().create_tag(first.snapshot_id, "first").commit())
    replaced(lh)
    pyiceberg(lh, lambda t: t.maintenance.expire_snapshots().by_id(head.snapshot_id).commit())
    with pytest.raises(InputError, match="expired"):
        lh.table("raw.t", as_of=head.timestamp_ms)
    with pyiceberg_table(lh) as t:
        assert t.snapshot_as_of_timestamp(head.timestamp_ms).snapshot_id != head.snapshot_id
    first_then = lh.table("raw.t", as_of=first.timestamp_ms)
    assert first_then.current_snapshot_id == first.snapshot_id
