"""Branches and tags of the embedded catalog: isolation, fast-forward merges, conflicts."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from tests.conftest import make_events

import process_support
from phlo import errors


def ids(table) -> list[int]:
    return sorted(table.scan().to_arrow().column("id").to_pylist())


def test_writes_on_a_branch_stay_there_until_merged(lh, events_table):
    events_table.append(make_events(0, 10))
    lh.create_branch("dev")
    assert lh.branches() == ["main", "dev"]
    dev = lh.table("raw.events", ref="dev")
    dev.append(make_events(10, 5))
    dev.merge(make_events(0, 2), "id")
    assert ids(dev) == list(range(15))
    assert ids(events_table) == list(range(10)), "main does not see the branch's writes"
    assert len(dev.history()) == 3 and len(events_table.history()) == 1

    result = lh.merge("dev", into="main")
    assert result.fast_forwarded == ["raw.events"] and result.added == []
    assert ids(events_table) == list(range(15))
    # PyIceberg reads main through the same catalog file and sees the merge.
    pyi = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table("raw.events")
    assert sorted(pyi.scan().to_arrow().column("id").to_pylist()) == list(range(15))
    # Merging again with no new writes changes nothing; new writes merge again.
    assert lh.merge("dev").fast_forwarded == []
    dev.append(make_events(100, 1))
    assert lh.merge("dev").fast_forwarded == ["raw.events"]
    assert ids(events_table)[-1] == 100


def test_appends_on_both_sides_are_rebased(lh, events_table):
    other = lh.create_table("raw.other", {"id": pa.int64()})
    events_table.append(make_events(0, 3))
    lh.create_branch("feature")
    lh.table("raw.events", ref="feature").append(make_events(10, 3))
    lh.table("raw.events", ref="feature").append(
        make_events(20, 3), properties={"phlo.run-id": "r7"}, message="second load"
    )
    lh.table("raw.other", ref="feature").append([{"id": 1}])
    events_table.append(make_events(50, 3))  # main moved too: Nessie would refuse this merge
    result = lh.merge("feature")
    assert result.rebased == ["raw.events"] and result.fast_forwarded == ["raw.other"]
    assert ids(events_table) == [0, 1, 2, 10, 11, 12, 20, 21, 22, 50, 51, 52]
    assert other.scan().to_arrow().num_rows == 1
    history = events_table.history()
    assert history[-1].summary["phlo.rebased-from"] == "feature"
    assert history[-1].summary["total-records"] == "12"
    # The rebased snapshot says what produced it, as a fast-forwarded one would.
    assert history[-1].summary["phlo.run-id"] == "r7"
    assert history[-1].summary["phlo.message"] == "second load"
    pyi = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table("raw.events")
    assert pyi.scan().to_arrow().num_rows == 12


def test_upserts_whose_keys_the_target_gained_conflict_and_nothing_merges(lh, events_table):
    other = lh.create_table("raw.other", {"id": pa.int64()})
    events_table.append(make_events(0, 3))
    lh.create_branch("feature")
    lh.table("raw.events", ref="feature").merge(make_events(0, 2), "id")  # an overwrite
    lh.table("raw.other", ref="feature").append([{"id": 1}])
    events_table.append(make_events(1, 3))  # main gained rows with keys the branch upserted
    with pytest.raises(errors.CommitConflictError) as info:
        lh.merge("feature")
    assert info.value.table == "raw.events"
    assert 'unique key (id) {"id":1}' in str(info.value), "names the key both sides wrote"
    assert ids(events_table) == [0, 1, 1, 2, 2, 3]
    assert other.scan().to_arrow().num_rows == 0, "all or nothing: raw.other did not move"


def test_upserts_of_other_keys_are_rebased(lh, events_table):
    events_table.append(make_events(0, 3))
    lh.create_branch("feature")
    changed = make_events(0, 2).set_column(3, "value", pa.array([7.0, 8.0]))
    lh.table("raw.events", ref="feature").merge(changed, "id")
    events_table.append(make_events(50, 3))  # other keys: the upsert still holds
    result = lh.merge("feature")
    assert result.rebased == ["raw.events"]
    rows = {r["id"]: r["value"] for r in events_table.scan().to_arrow().to_pylist()}
    assert rows == {0: 7.0, 1: 8.0, 2: 1.0, 50: 0.0, 51: 0.5, 52: 1.0}
    assert events_table.history()[-1].summary["operation"] == "overwrite"


def test_upserts_of_a_file_the_target_rewrote_conflict(lh, events_table):
    events_table.append(make_events(0, 3))
    lh.create_branch("feature")
    lh.table("raw.events", ref="feature").merge(make_events(0, 1), "id")
    events_table.merge(make_events(0, 1), "id")  # both sides replaced the same file
    before = events_table.current_snapshot_id
    with pytest.raises(errors.CommitConflictError, match=r"raw\.events"):
        lh.merge("feature")
    assert events_table.current_snapshot_id == before


def both_upsert_one_file(lh, write_mode: str) -> tuple[int, int]:
    """raw.t holds ids 0-29 in three files; dev upserts 5 and 99, main appends 300 then upserts
    0 and 500: both rewrite the file of ids 0-9 (copy-on-write), whose other ids neither wrote."""
    table = lh.create_table("raw.t", {"id": pa.int64(), "by": pa.string()})
    for start in (0, 10, 20):
        table.append(pa.table({"id": list(range(start, start + 10)), "by": ["seed"] * 10}))
    lh.create_branch("dev")
    dev = lh.table("raw.t", ref="dev")
    ours = dev.merge(pa.table({"id": [5, 99], "by": ["dev", "dev"]}), "id", write_mode=write_mode)
    table.append(pa.table({"id": [300], "by": ["main"]}))
    theirs = table.merge(
        pa.table({"id": [0, 500], "by": ["main", "main"]}), "id", write_mode=write_mode
    )
    return ours.snapshot_id, theirs.snapshot_id


def test_both_sides_rewriting_one_file_conflict_naming_the_file_not_a_copied_key(lh):
    ours, theirs = both_upsert_one_file(lh, "copy-on-write")
    main = lh.table("raw.t")
    before = main.current_snapshot_id
    with pytest.raises(errors.CommitConflictError) as info:
        lh.merge("dev", "main")
    message = str(info.value)
    assert info.value.table == "raw.t"
    assert "both sides rewrote data file" in message and ".parquet" in message
    assert f"the branch in snapshot {ours} (overwrite, merge by id)" in message
    assert f"main in snapshot {theirs} (overwrite, merge by id)" in message
    assert "re-run the branch's writes on a branch forked from main" in message
    assert "unique key" not in message, "ids 1-4 and 6-9 were only copied: no key to blame"
    assert main.current_snapshot_id == before


def test_the_same_upserts_written_merge_on_read_rebase(lh):
    both_upsert_one_file(lh, "merge-on-read")
    assert lh.merge("dev", "main").rebased == ["raw.t"]
    rows = {r["id"]: r["by"] for r in lh.table("raw.t").scan().to_arrow().to_pylist()}
    expected = {i: "seed" for i in range(30)} | {0: "main", 500: "main", 300: "main"}
    assert rows == expected | {5: "dev", 99: "dev"}


def test_tags_are_immutable_snapshots_of_a_ref(lh, events_table):
    events_table.append(make_events(0, 4))
    lh.create_tag("v1")
    events_table.append(make_events(4, 4))
    assert lh.tags() == ["v1"]
    tagged = lh.table("raw.events", ref="v1")
    assert ids(tagged) == [0, 1, 2, 3]
    with pytest.raises(errors.InputError, match="immutable"):
        tagged.append(make_events(9, 1))
    with pytest.raises(errors.InputError, match="already exists"):
        lh.create_tag("v1")
    with pytest.raises(errors.InputError, match="tag"):
        lh.delete_branch("v1")
    assert ids(tagged) == [0, 1, 2, 3]


def test_deleting_a_branch_keeps_data_other_refs_use(lh, events_table):
    events_table.append(make_events(0, 5))
    lh.create_branch("tmp")
    lh.table("raw.events", ref="tmp").append(make_events(5, 5))
    lh.create_tag("tmp-snapshot", ref="tmp")
    lh.delete_branch("tmp")
    assert lh.branches() == ["main"]
    assert ids(lh.table("raw.events", ref="tmp-snapshot")) == list(range(10))
    assert ids(events_table) == list(range(5))
    with pytest.raises(errors.InputError, match="does not exist"):
        lh.table("raw.events", ref="tmp")


@pytest.mark.parametrize("name", ["", "..", "a/../b", "has space", "ctl\u0007", "-lead", "a//b"])
def test_bad_ref_names(lh, name):
    with pytest.raises(errors.InputError, match="ref name"):
        lh.create_branch(name)
    assert lh.branches() == ["main"]


def test_unknown_refs_and_main_rules(lh, events_table):
    with pytest.raises(errors.InputError, match="does not exist"):
        lh.create_branch("x", from_ref="nope")
    with pytest.raises(errors.InputError, match="does not exist"):
        lh.merge("nope")
    with pytest.raises(errors.InputError, match="main"):
        lh.delete_branch("main")
    lh.create_branch("a/b")  # slashes separate name parts
    assert "a/b" in lh.branches()


def _append_on_branch(root: str, start: int, out) -> None:
    import phlo

    table = phlo.Lakehouse.open(root).table("raw.events", ref="dev")
    for i in range(3):
        table.append(make_events(start + i * 10, 10))
    out.put("done")


def test_two_processes_appending_to_one_branch_lose_no_commit(lh, events_table):
    lh.create_branch("dev")
    ctx = process_support.context()
    out = ctx.Queue()
    procs = [ctx.Process(target=_append_on_branch, args=(str(lh.root), s, out)) for s in (0, 1000)]
    for p in procs:
        p.start()
    assert [out.get(timeout=120) for _ in procs] == ["done", "done"]
    for p in procs:
        p.join(timeout=60)
    dev = lh.table("raw.events", ref="dev")
    assert len(ids(dev)) == 60 and len(dev.history()) == 6
    assert ids(events_table) == []


def test_the_log_records_every_change_on_each_ref(lh, events_table, monkeypatch):
    monkeypatch.setenv("PHLO_AUTHOR", "ada")
    events_table.append(make_events(0, 3), properties={"phlo.run-id": "run-1"})
    lh.create_branch("dev")
    lh.table("raw.events", ref="dev").merge(make_events(0, 2), "id")
    lh.merge("dev")
    main_log = lh.log("main")
    assert [e.message for e in main_log] == [
        "merge dev into main: 1 fast-forwarded, 0 added, 0 rebased",
        "append raw.events",
        "create table raw.events",
    ]
    assert main_log[1].run_id == "run-1" and main_log[1].tables == ["raw.events"]
    # The table was created (by the fixture) before PHLO_AUTHOR was set.
    assert all(e.author == "ada" for e in lh.log()[:-1])
    assert [e.message for e in lh.log("dev")] == [
        "overwrite raw.events",
        "create branch dev from main",
    ]
    assert len(lh.log(limit=2)) == 2
    assert lh.log("nope") == []


def test_diff_lists_changed_tables(lh, events_table):
    lh.create_table("raw.other", {"id": pa.int64()})
    lh.create_branch("dev")
    assert lh.diff("main", "dev").changed == []
    lh.table("raw.events", ref="dev").append(make_events(0, 2))
    diff = lh.diff("main", "dev")
    assert (diff.changed, diff.added, diff.removed) == (["raw.events"], [], [])
    lh.create_table("raw.late", {"id": pa.int64()})  # created on main after the fork
    assert lh.diff("main", "dev").removed == ["raw.late"]
    assert lh.diff("dev", "main").added == ["raw.late"]
    with pytest.raises(errors.InputError, match="does not exist"):
        lh.diff("main", "nope")


def test_diff_rows_counts_added_removed_and_changed_rows(lh, events_table):
    events_table.append(make_events(0, 30))
    events_table.append(make_events(100, 30))  # files both refs share are not read
    lh.create_branch("dev")
    dev = lh.table("raw.events", ref="dev")
    updated = make_events(0, 3).set_column(3, "value", pa.array([9.5, 9.5, 9.5]))
    dev.merge(updated, "id")  # ids 0-2 changed (a day-partitioned table: their files rewritten)
    dev.append(make_events(500, 4))
    diff = lh.diff_rows("raw.events", "main", "dev", key="id", sample=2)
    assert (diff.added, diff.removed, diff.changed) == (4, 0, 3)
    assert diff.added_sample.num_rows == 2 and diff.changed_sample.num_rows == 2
    assert set(diff.changed_sample.column("value").to_pylist()) == {9.5}
    back = lh.diff_rows("raw.events", "dev", "main", key=["id"])
    assert (back.added, back.removed, back.changed) == (0, 4, 3)
    same = lh.diff_rows("raw.events", "main", "main", key="id")
    assert (same.added, same.removed, same.changed) == (0, 0, 0)
    with pytest.raises(errors.SchemaError):
        lh.diff_rows("raw.events", "main", "dev", key="nope")


def test_a_transaction_lands_every_table_or_none(lh, events_table):
    other = lh.create_table("raw.other", {"id": pa.int64()})
    with lh.transaction() as tx:
        tx.table("raw.events").append(make_events(0, 5))
        tx.table("raw.other").append([{"id": 1}, {"id": 2}])
        assert ids(events_table) == [] and other.scan().to_arrow().num_rows == 0
    assert ids(events_table) == [0, 1, 2, 3, 4] and other.scan().to_arrow().num_rows == 2
    assert sorted(tx.result.fast_forwarded) == ["raw.events", "raw.other"]
    assert lh.branches() == ["main"], "the transaction's branch is gone"

    with pytest.raises(RuntimeError, match="source failed"):
        with lh.transaction() as tx:
            tx.table("raw.other").append([{"id": 3}])
            raise RuntimeError("source failed")
    assert other.scan().to_arrow().num_rows == 2 and lh.branches() == ["main"]

    # Another writer upserts the key the transaction upserts: nothing lands.
    with pytest.raises(errors.CommitConflictError):
        with lh.transaction() as tx:
            tx.table("raw.events").merge(make_events(0, 1), "id")
            tx.table("raw.other").append([{"id": 9}])
            events_table.merge(make_events(0, 1), "id")
    assert other.scan().to_arrow().num_rows == 2 and lh.branches() == ["main"]


def test_a_column_added_on_a_branch_joins_main_when_both_moved(lh):
    table = lh.create_table("raw.t", {"id": pa.int64(), "v": pa.string()})
    table.append(pa.table({"id": [1, 2], "v": ["a", "b"]}))
    lh.create_branch("dev")
    wider = pa.table({"id": [3], "v": ["c"], "extra": [30]})
    lh.table("raw.t", ref="dev").append(wider, schema_evolution="evolve")
    table.append(pa.table({"id": [4], "v": ["d"]}))  # main moved on
    assert lh.merge("dev").rebased == ["raw.t"]
    assert "extra" in table.schema.names
    got = {r["id"]: r["extra"] for r in table.scan().to_arrow().to_pylist()}
    assert got == {1: None, 2: None, 3: 30, 4: None}
    pyi = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table("raw.t")
    assert "extra" in pyi.schema().column_names
    assert sorted(pyi.scan().to_arrow().column("extra").to_pylist(), key=str) == [
        30,
        None,
        None,
        None,
    ]


def test_columns_added_on_both_sides_with_one_field_id_conflict(lh):
    table = lh.create_table("raw.t", {"id": pa.int64()})
    table.append(pa.table({"id": [1]}))
    lh.create_branch("dev")
    lh.table("raw.t", ref="dev").append(
        pa.table({"id": [2], "extra": ["x"]}), schema_evolution="evolve"
    )
    table.append(pa.table({"id": [3], "other": [1.5]}), schema_evolution="evolve")
    before = table.current_snapshot_id
    with pytest.raises(errors.CommitConflictError, match="extra") as info:
        lh.merge("dev")
    assert info.value.table == "raw.t"
    assert table.current_snapshot_id == before and "extra" not in table.schema.names
