"""Bad input gets a typed `phlo.errors` exception naming what and where, and the table is
left exactly as it was."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from tests.conftest import make_events

import phlo
from phlo import errors


@pytest.fixture
def loaded(events_table):
    events_table.append(make_events(0, 12))
    return events_table


def assert_unchanged(table: phlo.Table, snapshots: int = 1, rows: int = 12) -> None:
    assert len(table.history()) == snapshots
    assert table.scan().to_arrow().num_rows == rows


def test_wrong_types_raise_schema_error_naming_the_column(loaded):
    bad = make_events(100, 3).set_column(0, "id", pa.array(["1", "2", "x"]))
    with pytest.raises(errors.SchemaError) as info:
        loaded.append(bad)
    assert info.value.column == "id"
    assert info.value.table == "raw.events"
    assert "cannot cast" in str(info.value)
    assert_unchanged(loaded)


def test_overflowing_values_are_not_silently_nulled(lh):
    table = lh.create_table("raw.small", {"n": pa.int32()})
    with pytest.raises(errors.SchemaError, match="n"):
        table.append(pa.table({"n": pa.array([1, 2**40], pa.int64())}))
    assert table.history() == []


def test_missing_required_column(loaded):
    with pytest.raises(errors.SchemaError) as info:
        loaded.append(make_events(100, 3).drop_columns(["id"]))
    assert info.value.column == "id"
    assert "required" in str(info.value)
    assert_unchanged(loaded)


def test_null_in_required_column(loaded):
    bad = make_events(100, 2).set_column(0, "id", pa.array([1, None], pa.int64()))
    with pytest.raises(errors.SchemaError, match="null"):
        loaded.append(bad)
    assert_unchanged(loaded)


def test_unknown_extra_column(loaded):
    with pytest.raises(errors.SchemaError) as info:
        loaded.append(make_events(100, 2).append_column("surprise", pa.array([1, 2])))
    assert info.value.column == "surprise"
    assert_unchanged(loaded)


def test_timezone_mismatch_is_refused(loaded):
    naive = make_events(100, 2).set_column(
        1, "ts", pa.array([dt.datetime(2024, 1, 1)] * 2, pa.timestamp("us"))
    )
    with pytest.raises(errors.SchemaError, match="time zone"):
        loaded.append(naive)
    assert_unchanged(loaded)


@pytest.mark.parametrize(
    "empty",
    [
        pytest.param(lambda: make_events(0, 0), id="zero-row-table"),
        pytest.param(lambda: [], id="empty-list"),
    ],
)
def test_empty_input(loaded, empty):
    with pytest.raises(errors.EmptyInputError):
        loaded.append(empty())
    assert_unchanged(loaded)


def test_not_arrow_data(loaded):
    with pytest.raises(errors.InputError, match="cannot read"):
        loaded.append(42)
    with pytest.raises(errors.InputError):
        loaded.append(None)
    assert_unchanged(loaded)


def test_a_failing_stream_commits_nothing(loaded):
    good = make_events(100, 5)

    def batches():
        yield from good.to_batches()
        raise RuntimeError("source went away")

    reader = pa.RecordBatchReader.from_batches(good.schema, batches())
    with pytest.raises(errors.PhloError, match="source went away"):
        loaded.append(reader)
    assert_unchanged(loaded)
    data_files = list((loaded_root(loaded) / "data").rglob("*.parquet"))
    assert len(data_files) == 3, "the failed write's files were removed"


def loaded_root(table: phlo.Table):
    from pathlib import Path

    return Path(table.metadata_location.removeprefix("file://")).parent.parent


def test_unknown_table_and_namespace(lh):
    with pytest.raises(errors.NoSuchTableError) as info:
        lh.table("raw.nope")
    assert info.value.table == "raw.nope"
    assert isinstance(info.value, LookupError)
    with pytest.raises(errors.NoSuchNamespaceError):
        lh.create_table("missing.t", {"id": pa.int64()})
    with pytest.raises(errors.TableAlreadyExistsError):
        lh.create_table("raw.t", {"id": pa.int64()})
        lh.create_table("raw.t", {"id": pa.int64()})
    with pytest.raises(errors.NamespaceAlreadyExistsError):
        lh.create_namespace("raw")


@pytest.mark.parametrize(
    ("filter_", "column"),
    [
        (("nope", "=", 1), "nope"),
        (("id", "=", "x"), "id"),
        (("id", "between", (1,)), "id"),
        (("id", "~", 1), None),
        (("id", "in", 5), "id"),
    ],
)
def test_bad_filters(loaded, filter_, column):
    with pytest.raises(errors.InputError) as info:
        loaded.scan(filter=filter_)
    assert info.value.column == column


def test_every_error_is_a_phlo_error():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.PhloError)
