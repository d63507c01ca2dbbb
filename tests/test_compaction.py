"""Small files and many manifests: `Table.compact`, `Lakehouse.rewrite_manifests` and manifest
merging on commit, checked against the pre-compaction rows, PyIceberg on the same catalog, and
a writer in another process."""

from __future__ import annotations

import pyarrow as pa
import pytest
from click.testing import CliRunner
from pyiceberg.catalog.sql import SqlCatalog
from tests.conftest import EVENTS_SCHEMA, make_events

import phlo
import process_support
from phlo import errors
from phlo.cli import main as cli


def pyiceberg_table(lh: phlo.Lakehouse, name: str = "raw.events"):
    return SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table(name)


def sorted_rows(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: r["id"])


def manifest_count(lh: phlo.Lakehouse) -> int:
    pyi = pyiceberg_table(lh)
    snapshot = pyi.current_snapshot()
    assert snapshot is not None
    return len(snapshot.manifests(pyi.io))


def test_compaction_keeps_every_row_and_pyiceberg_reads_both_sides(lh, events_table):
    for i in range(12):
        events_table.append(make_events(i * 30, 30))
    before = sorted_rows(events_table.to_arrow())
    before_snapshot = events_table.current_snapshot_id
    files_before = events_table.scan().files_total

    result = events_table.compact(target_file_size=1 << 20)

    assert result.files_rewritten == files_before  # 12 loads x 3 days, all small
    assert result.files_added == 3  # one per day
    assert result.rows == len(before)
    assert result.bytes_after < result.bytes_before
    assert result.snapshot_id == events_table.current_snapshot_id
    assert events_table.history()[-1].operation == "replace"
    assert sorted_rows(events_table.to_arrow()) == before
    assert events_table.scan().files_total == 3

    pyi = pyiceberg_table(lh)
    assert sorted_rows(pyi.scan().to_arrow()) == before
    assert pyi.current_snapshot().summary.operation.value == "replace"
    # Time travel to before the compaction reads the small files, still referenced.
    assert sorted_rows(pyi.scan(snapshot_id=before_snapshot).to_arrow()) == before
    assert sorted_rows(events_table.scan(snapshot_id=before_snapshot).to_arrow()) == before
    # Compacting again finds nothing: no new snapshot.
    again = events_table.compact(target_file_size=1 << 20)
    assert again.snapshot_id is None and again.files_rewritten == 0
    assert len(events_table.history()) == 13


def test_compaction_keeps_the_order_rows_were_loaded_in(lh):
    table = lh.create_table(
        "raw.log", {"seq": pa.int64(), "day": pa.string()}, partition_by=["day"]
    )
    for i in range(6):
        table.append(pa.table({"seq": list(range(i * 5, i * 5 + 5)), "day": ["d"] * 5}))
    table.compact(target_file_size=1 << 20)
    assert table.scan().files_total == 1
    assert table.to_arrow().column("seq").to_pylist() == list(range(30))


def test_many_commits_merge_their_manifests_and_rewrite_manifests_regroups_them(lh):
    table = lh.create_table("raw.events", EVENTS_SCHEMA)
    for i in range(150):
        table.append(make_events(i, 1))
    # Commit 100 merged the first hundred; the fifty since then are still on their own.
    assert manifest_count(lh) == 51
    assert sorted(pyiceberg_table(lh).scan().to_arrow().column("id").to_pylist()) == list(
        range(150)
    )
    result = lh.rewrite_manifests("raw.events")
    assert (result.manifests_before, result.manifests_after) == (51, 1)
    assert manifest_count(lh) == 1
    assert table.history()[-1].operation == "replace"
    assert sorted(table.scan(columns=["id"]).to_arrow().column("id").to_pylist()) == list(
        range(150)
    )


def test_merging_can_be_switched_off_per_table(lh):
    table = lh.create_table(
        "raw.events", EVENTS_SCHEMA, properties={"commit.manifest-merge.enabled": "false"}
    )
    for i in range(101):
        table.append(make_events(i, 1))
    assert manifest_count(lh) == 101


def test_compaction_after_a_pyiceberg_rename_and_drop_keeps_values(lh, events_table):
    loads = [make_events(0, 20), make_events(20, 20), make_events(40, 20)]
    events_table.append(loads[0])
    events_table.append(loads[1])
    with pyiceberg_table(lh).update_schema() as update:
        update.rename_column("value", "amount")
        update.delete_column("category")
    events_table.append(loads[2].drop_columns(["category"]).rename_columns(["id", "ts", "amount"]))
    expected = {r["id"]: r["value"] for load in loads for r in load.to_pylist()}

    result = events_table.compact(target_file_size=1 << 20)

    assert result.files_rewritten == 9 and result.files_added == 3
    after = events_table.to_arrow()
    assert after.column_names == ["id", "ts", "amount"]
    assert {r["id"]: r["amount"] for r in after.to_pylist()} == expected
    pyi_rows = pyiceberg_table(lh).scan().to_arrow().to_pylist()
    assert {r["id"]: r["amount"] for r in pyi_rows} == expected


def test_compaction_on_a_tag_or_a_past_version_is_refused(lh, events_table):
    for i in range(3):
        events_table.append(make_events(i * 10, 10))
    lh.create_tag("v1")
    history = len(events_table.history())
    with pytest.raises(errors.InputError, match="v1 is a tag"):
        lh.table("raw.events", ref="v1").compact()
    with pytest.raises(errors.InputError, match="v1 is a tag"):
        lh.rewrite_manifests("raw.events", ref="v1")
    with pytest.raises(errors.InputError, match="read-only"):
        lh.table("raw.events", as_of=events_table.history()[0].timestamp).compact()
    with pytest.raises(errors.InputError, match="target_file_size"):
        events_table.compact(target_file_size=0)
    with pytest.raises(errors.InputError, match="not in the table"):
        events_table.compact(filter=("nope", "=", 1))
    assert len(events_table.history()) == history


def test_a_bad_manifest_merge_property_names_the_property(lh):
    table = lh.create_table(
        "raw.events", EVENTS_SCHEMA, properties={"commit.manifest.target-size-bytes": "8MB"}
    )
    with pytest.raises(errors.InputError, match=r"commit\.manifest\.target-size-bytes") as info:
        table.append(make_events(0, 3))
    assert info.value.table == "raw.events"
    assert table.current_snapshot_id is None


def _load_and_merge(root: str, rounds: int, out) -> None:
    table = phlo.Lakehouse.open(root).table("raw.events")
    refused = 0
    for i in range(rounds):
        table.append(make_events(1000 + i * 10, 10))
        while True:  # a compaction that committed first makes the merge refuse: retry it
            try:
                table.merge(_updates(i), "id")
                break
            except errors.CommitConflictError:
                refused += 1
    out.put(refused)


def _updates(i: int) -> pa.Table:
    """Round `i`'s new values for two existing ids (both in the files being compacted)."""
    batch = make_events(i * 7 % 80, 2)
    return batch.set_column(3, "value", pa.array([1000.0 + i] * 2))


def test_compaction_while_another_process_appends_and_merges_loses_nothing(lh, events_table):
    expected = {}
    for i in range(8):
        events_table.append(make_events(i * 10, 10))
        expected.update({r["id"]: r for r in make_events(i * 10, 10).to_pylist()})
    rounds = 12
    for i in range(rounds):
        for r in make_events(1000 + i * 10, 10).to_pylist():
            expected[r["id"]] = r
        for r in _updates(i).to_pylist():
            expected[r["id"]] = r

    ctx = process_support.context()
    out = ctx.Queue()
    writer = ctx.Process(target=_load_and_merge, args=(str(lh.root), rounds, out))
    writer.start()
    outcomes = {"compacted": 0, "conflict": 0, "nothing": 0}
    while writer.is_alive() and out.empty():
        try:
            result = events_table.compact(target_file_size=1 << 20)
        except errors.CommitConflictError as exc:
            assert "no longer in the table" in str(exc)
            outcomes["conflict"] += 1
            continue
        outcomes["compacted" if result.snapshot_id else "nothing"] += 1
    out.get(timeout=120)  # how many merges were refused (and retried): any number is fine
    writer.join(timeout=60)
    events_table.compact(target_file_size=1 << 20)

    # Whatever interleaving happened: every merge's update and every append is there, once.
    rows = events_table.to_arrow().to_pylist()
    assert len(rows) == len(expected)
    assert {r["id"]: r for r in rows} == expected
    assert sum(outcomes.values()) > 0
    assert {r["id"]: r for r in pyiceberg_table(lh).scan().to_arrow().to_pylist()} == expected


def test_cli_compacts_and_rewrites_manifests(lh, events_table):
    for i in range(4):
        events_table.append(make_events(i * 10, 10))
    runner = CliRunner()
    root = ["--root", str(lh.root)]
    result = runner.invoke(
        cli,
        [
            *root,
            "maintain",
            "compact",
            "raw.events",
            "--target-file-size",
            "1MB",
            "--filter",
            "ts < 2024-01-02T00:00:00+00:00",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "compacted 4 files" in result.output
    assert events_table.scan().files_total == 9  # day 1 compacted, days 2 and 3 not
    result = runner.invoke(
        cli, [*root, "maintain", "compact", "raw.events", "--target-file-size", "1MB"]
    )
    assert "compacted 8 files" in result.output, result.output
    assert events_table.scan().files_total == 3
    result = runner.invoke(cli, [*root, "maintain", "rewrite-manifests", "raw.events"])
    assert result.exit_code == 0, result.output
    assert "into 1, snapshot" in result.output
    result = runner.invoke(
        cli, [*root, "maintain", "compact", "raw.events", "--target-file-size", "big"]
    )
    assert result.exit_code != 0 and "not a size" in result.output
    assert sorted(events_table.scan(columns=["id"]).to_arrow().column("id").to_pylist()) == list(
        range(40)
    )


def test_writes_and_compaction_follow_the_tables_target_file_size(lh):
    """Iceberg's `write.target-file-size-bytes`, set through phlo or by another engine, is where
    phlo's writers roll over to a new file and what `compact()` aims for by default."""
    import secrets

    rows = 640_000  # five of the writer's 128k-row slices, of incompressible text
    data = pa.table({"id": range(rows), "blob": [secrets.token_hex(8) for _ in range(rows)]})
    default = lh.create_table("raw.default_size", data.schema)
    default.append(data)
    small = lh.create_table("raw.small_files", data.schema)
    assert small.set_properties({"write.target-file-size-bytes": str(256 * 1024)}) is True
    small.append(data)
    assert small.scan().files_total > default.scan().files_total
    assert small.to_arrow().num_rows == rows

    # Files at the table's target are not small: nothing to compact by default.
    assert small.compact().snapshot_id is None
    # Another engine raises the target: compact() now folds them together.
    pyi = pyiceberg_table(lh, "raw.small_files")
    with pyi.transaction() as tx:
        tx.set_properties({"write.target-file-size-bytes": str(1 << 30)})
    small = lh.table("raw.small_files")
    compacted = small.compact()
    assert compacted.snapshot_id is not None and small.scan().files_total == 1
    assert sorted(small.to_arrow().column("id").to_pylist()) == list(range(rows))

    with pytest.raises(errors.InputError, match=r"write\.target-file-size-bytes.*not a byte count"):
        small.set_properties({"write.target-file-size-bytes": "big"})
    with pyi.transaction() as tx:  # left by another engine: a write names it, nothing lands
        tx.set_properties({"write.target-file-size-bytes": "0"})
    small = lh.table("raw.small_files")
    with pytest.raises(errors.InputError, match=r"write\.target-file-size-bytes"):
        small.append(data.slice(0, 10))
    assert small.to_arrow().num_rows == rows
