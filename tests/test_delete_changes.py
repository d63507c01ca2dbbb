"""`Table.delete(filter)` against a plain Python model, and `Table.changes(from, to)`: the rows
appended between two snapshots."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner
from pyiceberg.catalog.sql import SqlCatalog
from tests.conftest import make_events

import phlo
from phlo.cli import main
from phlo.errors import InputError

DAY = dt.timedelta(days=1)
JAN1 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def by_id(table: pa.Table) -> dict[int, dict[str, Any]]:
    return {row["id"]: row for row in table.to_pylist()}


def fill(table: phlo.Table) -> dict[int, dict[str, Any]]:
    """Three appends of 90 events over 3 days; returns the model (rows by id)."""
    model: dict[int, dict[str, Any]] = {}
    for start in (0, 90, 180):
        batch = make_events(start, 90)
        table.append(batch)
        model.update(by_id(batch))
    return model


def pyiceberg(lh: phlo.Lakehouse) -> SqlCatalog:
    return SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)


def test_deletes_match_a_python_model(lh: phlo.Lakehouse, events_table: phlo.Table) -> None:
    model = fill(events_table)
    cases: list[tuple[Any, Any]] = [
        (("id", "=", 5), lambda r: r["id"] == 5),
        (("value", "between", (10, 20)), lambda r: 10 <= r["value"] <= 20),
        (
            [("category", "in", ["a", "c"]), ("id", ">=", 200)],
            lambda r: r["category"] in ("a", "c") and r["id"] >= 200,
        ),
        (("ts", "<", JAN1 + DAY), lambda r: r["ts"] < JAN1 + DAY),
        (
            [("category", "!=", "b"), ("id", "<", 100)],
            lambda r: r["category"] != "b" and r["id"] < 100,
        ),
    ]
    for filters, matches in cases:
        doomed = [i for i, row in model.items() if matches(row)]
        result = events_table.delete(filters)
        for i in doomed:
            del model[i]
        assert result.rows_deleted == len(doomed), filters
        assert by_id(events_table.to_arrow()) == model, filters
    # PyIceberg reads the result of every rewrite and drop the same.
    theirs = pyiceberg(lh).load_table("raw.events").scan().to_arrow()
    assert by_id(theirs) == model


def test_a_whole_day_is_dropped_without_reading_a_file(events_table: phlo.Table) -> None:
    model = fill(events_table)
    files = events_table.scan().files_total
    result = events_table.delete([("ts", ">=", JAN1 + DAY), ("ts", "<", JAN1 + 2 * DAY)])
    assert result.files_scanned == 0
    assert (result.files_removed, result.files_added) == (files // 3, 0)
    assert result.rows_deleted == sum(1 for r in model.values() if r["ts"].day == 2)
    assert events_table.history()[-1].operation == "delete"
    # Part of a day: that day's file is read and rewritten without the rows.
    result = events_table.delete([("id", "in", [3, 6, 9]), ("ts", "<", JAN1 + DAY)])
    assert (result.files_scanned, result.files_removed, result.files_added) == (1, 1, 1)
    assert events_table.history()[-1].operation == "overwrite"
    assert result.snapshot_id == events_table.current_snapshot_id


def test_deleting_nothing_commits_nothing(lh: phlo.Lakehouse, events_table: phlo.Table) -> None:
    model = fill(events_table)
    snapshots = len(events_table.history())
    for filters in [("id", ">", 10_000), ("value", "=", 0.25)]:
        result = events_table.delete(filters)
        assert (result.snapshot_id, result.rows_deleted) == (None, 0)
    assert len(events_table.history()) == snapshots
    assert by_id(events_table.to_arrow()) == model


def test_bad_filters_and_tags_raise_and_change_nothing(
    lh: phlo.Lakehouse, events_table: phlo.Table
) -> None:
    fill(events_table)
    lh.create_tag("v1")
    location = events_table.metadata_location
    with pytest.raises(InputError) as unknown:
        events_table.delete(("nope", "=", 1))
    assert (unknown.value.table, unknown.value.column) == ("raw.events", "nope")
    with pytest.raises(InputError) as wrong_type:
        events_table.delete(("id", "=", "seven"))
    assert wrong_type.value.column == "id"
    with pytest.raises(InputError, match="needs a filter"):
        events_table.delete([])
    with pytest.raises(InputError, match="v1 is a tag"):
        lh.table("raw.events", ref="v1").delete(("id", "=", 1))
    assert events_table.metadata_location == location


def test_a_delete_on_a_branch_leaves_main_alone(
    lh: phlo.Lakehouse, events_table: phlo.Table
) -> None:
    model = fill(events_table)
    lh.create_branch("dev")
    dev = lh.table("raw.events", ref="dev")
    result = dev.delete(("category", "=", "b"), message="drop b", author="ana")
    assert result.rows_deleted == sum(1 for r in model.values() if r["category"] == "b")
    assert by_id(events_table.to_arrow()) == model
    assert by_id(dev.to_arrow()) == {i: r for i, r in model.items() if r["category"] != "b"}
    entry = lh.log("dev", limit=1)[0]
    assert (entry.message, entry.author) == ("drop b", "ana")
    events_table.delete(("id", "=", 1))
    assert lh.log("main", limit=1)[0].message == "delete from raw.events where id = 1"


def test_changes_are_exactly_the_appended_rows(
    lh: phlo.Lakehouse, events_table: phlo.Table
) -> None:
    first = make_events(0, 30)
    events_table.append(first)
    start = events_table.current_snapshot_id
    assert start is not None
    second, third = make_events(100, 30), make_events(200, 30)
    events_table.append(second)
    middle = events_table.current_snapshot_id
    events_table.append(third)

    changes = events_table.changes(start)
    assert changes.files_scanned == 6  # the two appends' files (3 days each), nothing else
    assert by_id(changes.to_arrow()) == by_id(pa.concat_tables([second, third]))
    assert by_id(events_table.changes(start, middle).to_arrow()) == by_id(second)
    assert by_id(pa.table(events_table.changes(None, start))) == by_id(first)
    assert events_table.changes(middle, middle).to_polars().height == 0
    # A table opened as of a past commit reads the changes up to that point.
    past = lh.table("raw.events", as_of=lh.log("main", limit=2)[1])
    assert by_id(past.changes(start).to_arrow()) == by_id(second)


def test_changes_across_a_delete_or_upsert_name_that_snapshot(events_table: phlo.Table) -> None:
    events_table.append(make_events(0, 30))
    start = events_table.current_snapshot_id
    assert start is not None
    deleted = events_table.delete(("id", "=", 4)).snapshot_id
    with pytest.raises(InputError, match=f"snapshot {deleted} \\(overwrite\\)"):
        events_table.changes(start)
    after = events_table.current_snapshot_id
    assert after is not None
    merged = events_table.merge(make_events(10, 2), "id").snapshot_id
    with pytest.raises(InputError, match=str(merged)):
        events_table.changes(after)


def test_changes_with_unknown_unrelated_or_expired_snapshots_raise(
    lh: phlo.Lakehouse, events_table: phlo.Table
) -> None:
    events_table.append(make_events(0, 5))
    first = events_table.current_snapshot_id
    events_table.append(make_events(5, 5))
    second = events_table.current_snapshot_id
    for start, end in [(123, None), (second, first), (None, 456)]:
        with pytest.raises(InputError) as err:
            events_table.changes(start, end)
        assert err.value.table == "raw.events"
    assert lh.expire_snapshots(older_than=dt.timedelta(0)).snapshots_expired == 1
    with pytest.raises(InputError, match=f"snapshot {first} is not in the history"):
        events_table.changes(first)


def test_changes_read_renamed_columns_by_field_id(
    lh: phlo.Lakehouse, events_table: phlo.Table
) -> None:
    events_table.append(make_events(0, 10))
    start = events_table.current_snapshot_id
    events_table.append(make_events(10, 10))
    with pyiceberg(lh).load_table("raw.events").update_schema() as update:
        update.rename_column("value", "amount")
    renamed = make_events(20, 10).rename_columns(["id", "ts", "category", "amount"])
    events_table.append(renamed)

    rows = events_table.changes(start).to_arrow()
    assert rows.column_names == ["id", "ts", "category", "amount"]
    amounts = dict(zip(rows["id"].to_pylist(), rows["amount"].to_pylist(), strict=True))
    # Written as "value" before the rename, read as "amount" by field id.
    assert amounts == {i: (i - 10) * 0.5 if i < 20 else (i - 20) * 0.5 for i in range(10, 30)}


def test_the_delete_command(lh: phlo.Lakehouse, events_table: phlo.Table) -> None:
    model = fill(events_table)

    def run(*args: str) -> Any:
        return CliRunner().invoke(main, ["--root", str(lh.root), "delete", "raw.events", *args])

    done = run("--where", "category in 'a', c", "--where", "value between 0 and 10", "-m", "tidy")
    assert done.exit_code == 0, done.output
    doomed = {i for i, r in model.items() if r["category"] in "ac" and 0 <= r["value"] <= 10}
    assert f"deleted {len(doomed)} rows" in done.output
    assert set(by_id(events_table.to_arrow())) == set(model) - doomed
    assert lh.log("main", limit=1)[0].message == "tidy"
    assert run("--where", "id > 9999").output.strip() == "no rows matched; nothing committed"
    bad = run("--where", "id = 'x'")
    assert bad.exit_code == 4 and "[invalid_input]" in bad.output
    assert run("--where", "id ~ 3").exit_code == 2
