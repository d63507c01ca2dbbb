"""Extraction: what an ingestion function returns (a real dlt source against a local HTTP API,
Arrow data, polars, pandas, generators of dicts, nothing) becomes one Arrow stream; failures
are retried and the whole extraction is stopped at `max_runtime_seconds`."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pdx
import polars as pl
import pyarrow as pa
import pytest
from pandera.typing import Series

from http_source import EventApi, http_api, record
from phlo import errors
from phlo.ingestion import IngestionDefinition, phlo_ingestion
from phlo.ingestion import sources as sources_module
from phlo.ingestion import spool as spool_module
from phlo.ingestion.deadline import REPEAT
from phlo.ingestion.sources import Extracted, contract_schema, extract

__all__ = ["http_api"]  # the fixture, used by name below

PAGINATOR = {
    "type": "page_number",
    "page_param": "page",
    "base_page": 1,
    "total_path": "total_pages",
}


class EventSchema(pdx.DataFrameModel):
    """The API's records as dlt normalizes them (snake_case names, nested as JSON)."""

    event_id: Series[int]
    date_string: Series[pd.DatetimeTZDtype] = pdx.Field(dtype_kwargs={"unit": "us", "tz": "UTC"})
    user_name: Series[str]
    amount: Series[float]
    details: Series[str]


def ingestion(fn: Callable[..., Any], **settings: Any) -> IngestionDefinition:
    base: dict[str, Any] = {
        "table_name": "events",
        "unique_key": "event_id",
        "group": "api",
        "validation_schema": EventSchema,
        "retry_delay_seconds": 0,
    }
    base.update(settings)
    return phlo_ingestion(**base)(fn)


def rows_of(extracted: Extracted) -> list[dict[str, Any]]:
    assert extracted.reader is not None
    return pa.Table.from_batches(list(extracted.reader), extracted.reader.schema).to_pylist()


def events_source(api: EventApi, **kwargs: Any) -> Any:
    from dlt.sources.rest_api import rest_api_source

    return rest_api_source(
        {
            "client": {"base_url": api.base_url, "paginator": PAGINATOR},
            "resources": [
                {"name": "events", "endpoint": {"path": "events", "data_selector": "data"}}
            ],
        },
        **kwargs,
    )


def expected_dlt_row(i: int) -> dict[str, Any]:
    raw = record(i)
    return {
        "event_id": i,
        "date_string": dt.datetime.fromisoformat(raw["dateString"]),
        "user_name": raw["userName"],
        "amount": raw["amount"],
        "details": raw["details"],
    }


# --- dlt ---------------------------------------------------------------------------------


@pytest.mark.parametrize("http_api", [{"rows": 2500, "page_size": 100}], indirect=True)
def test_a_dlt_rest_api_source_is_fully_taken_from_several_files(
    http_api: EventApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("DLT_DATA_DIR", raising=False)
    # Small files, so the table spans several of them.
    monkeypatch.setenv("NORMALIZE__DATA_WRITER__FILE_MAX_ITEMS", "700")

    def api_events(partition_date: str) -> Any:
        return events_source(http_api)

    extracted = extract(ingestion(api_events), "2024-01-01", tmp_path / "work")

    assert extracted.source_kind == "dlt"
    assert extracted.rows == 2500
    assert len(extracted.files) >= 4
    assert all(p.suffix == ".parquet" and tmp_path / "work" in p.parents for p in extracted.files)
    assert extracted.reader is not None
    assert extracted.reader.schema.names == [
        "event_id",
        "date_string",
        "user_name",
        "amount",
        "details",
    ]
    rows = sorted(rows_of(extracted), key=lambda r: r["event_id"])
    for row in rows:
        row["details"] = json.loads(row["details"])
    assert rows == [expected_dlt_row(i) for i in range(2500)]
    # Nothing under the home directory or the current folder; the environment is restored.
    assert list(home.iterdir()) == []
    assert list(cwd.iterdir()) == []
    assert "DLT_DATA_DIR" not in os.environ


def test_a_dlt_source_with_several_resources_takes_the_one_named_like_the_table(
    tmp_path: Path,
) -> None:
    import dlt

    @dlt.resource(name="users")
    def users() -> Iterator[dict[str, Any]]:
        yield {"user_id": 1}

    @dlt.resource(name="events")
    def events() -> Iterator[dict[str, Any]]:
        yield from (record(i) for i in range(5))

    @dlt.source
    def both() -> Any:
        return users, events

    extracted = extract(ingestion(lambda partition_date: both()), "2024-01-01", tmp_path)
    assert sorted(r["event_id"] for r in rows_of(extracted)) == list(range(5))

    other = ingestion(lambda partition_date: both(), table_name="orders")
    with pytest.raises(
        errors.SourceError, match=r"resources \['events', 'users'\]; phlo loads one"
    ):
        extract(other, "2024-01-01", tmp_path / "other")


def test_a_dlt_resource_with_a_camel_case_key_explains_dlt_naming(tmp_path: Path) -> None:
    import dlt

    class CamelSchema(pdx.DataFrameModel):
        eventId: Series[int]

    @dlt.resource(name="events")
    def events() -> Iterator[dict[str, Any]]:
        yield from (record(i) for i in range(3))

    definition = ingestion(
        lambda partition_date: events(), unique_key="eventId", validation_schema=CamelSchema
    )
    with pytest.raises(
        errors.SchemaError, match=r"no unique_key column 'eventId' \(did you mean 'event_id'\? dlt"
    ) as info:
        extract(definition, "2024-01-01", tmp_path)
    assert info.value.column == "eventId"


def test_a_dlt_resource_with_no_rows_is_no_data(tmp_path: Path) -> None:
    import dlt

    @dlt.resource(name="events")
    def events() -> Iterator[dict[str, Any]]:
        yield from []

    extracted = extract(ingestion(lambda partition_date: events()), "2024-01-01", tmp_path)
    assert (extracted.reader, extracted.rows, extracted.source_kind) == (None, 0, "none")


# --- Arrow-like data -----------------------------------------------------------------------


def arrow_events(n: int) -> pa.Table:
    return pa.table(
        {
            "event_id": pa.array(range(n), pa.int64()),
            "user_name": [f"user-{i}" for i in range(n)],
            "amount": [i * 0.25 for i in range(n)],
        }
    )


@pytest.mark.parametrize(
    ("make", "files"),
    [
        (lambda t: t, False),
        (lambda t: t.to_batches()[0], False),
        (lambda t: pl.from_arrow(t), False),
        (lambda t: t.to_pandas(), False),
        (
            lambda t: pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=7)),
            True,
        ),
    ],
    ids=["table", "batch", "polars", "pandas", "reader"],
)
def test_arrow_like_data(make: Callable[[pa.Table], Any], files: bool, tmp_path: Path) -> None:
    table = arrow_events(50)
    extracted = extract(ingestion(lambda partition_date: make(table)), "2024-01-01", tmp_path)
    assert extracted.source_kind == "arrow"
    assert extracted.rows == 50
    assert rows_of(extracted) == table.to_pylist()
    # A lazy stream is drained during extraction (inside the time limit) into local files.
    assert bool(extracted.files) is files


def test_a_table_is_read_without_copying(tmp_path: Path) -> None:
    table = arrow_events(10)
    extracted = extract(ingestion(lambda partition_date: table), "2024-01-01", tmp_path)
    assert extracted.reader is not None
    batch = extracted.reader.read_next_batch()
    assert batch.column(0).buffers()[1].address == table.column(0).chunks[0].buffers()[1].address


def test_a_generator_of_arrow_batches(tmp_path: Path) -> None:
    table = arrow_events(30)

    def batches(partition_date: str) -> Iterator[pa.RecordBatch]:
        yield from table.to_batches(max_chunksize=8)

    extracted = extract(ingestion(batches), "2024-01-01", tmp_path)
    assert (extracted.source_kind, extracted.rows) == ("arrow", 30)
    assert rows_of(extracted) == table.to_pylist()


# --- iterables of dicts --------------------------------------------------------------------


def test_a_generator_of_dicts_streams_in_batches_typed_by_the_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "BATCH_ROWS", 100)
    seen: list[int] = []

    def api_events(partition_date: str) -> Iterator[dict[str, Any]]:
        for i in range(1050):
            seen.append(i)
            row: dict[str, Any] = {
                "event_id": i,
                "date_string": f"{partition_date}T00:{i % 60:02d}:00+00:00",
                "user_name": f"user-{i}",
                # ints first, floats later: widened to double
                "amount": i if i < 500 else i + 0.5,
            }
            if i >= 900:  # a key that appears late: null before
                row["late"] = "x"
            yield row

    definition = ingestion(api_events)
    extracted = extract(definition, "2024-01-02", tmp_path)
    assert extracted.source_kind == "records"
    assert extracted.rows == 1050
    assert len(extracted.files) == 11
    assert extracted.reader is not None
    schema = extracted.reader.schema
    contract = contract_schema(definition)
    assert contract is not None
    # Typed by the contract (what lh.create_table(name, EventSchema) creates: timestamptz).
    assert schema.field("date_string").type == contract.field("date_string").type
    assert pa.types.is_timestamp(schema.field("date_string").type)
    assert schema.field("amount").type == pa.float64()
    rows = rows_of(extracted)
    expected = [
        {
            "event_id": i,
            "date_string": dt.datetime(2024, 1, 2, 0, i % 60, tzinfo=dt.UTC),
            "user_name": f"user-{i}",
            "amount": float(i if i < 500 else i + 0.5),
            "late": "x" if i >= 900 else None,
        }
        for i in range(1050)
    ]
    assert rows == expected
    assert seen == list(range(1050))


def test_a_list_of_dicts(tmp_path: Path) -> None:
    data = [{"event_id": i, "user_name": f"u{i}"} for i in range(5)]
    extracted = extract(ingestion(lambda partition_date: data), "2024-01-01", tmp_path)
    assert (extracted.source_kind, extracted.rows) == ("records", 5)
    assert rows_of(extracted) == data


def test_mixed_types_in_one_batch_name_the_column_and_row(tmp_path: Path) -> None:
    calls: list[int] = []

    def api_events(partition_date: str) -> list[dict[str, Any]]:
        calls.append(1)
        return [{"event_id": 1, "user_name": "a"}, {"event_id": 2, "user_name": 7}]

    with pytest.raises(
        errors.SchemaError,
        match=r"column 'user_name' mixes types: row 0 holds 'a' \(str\), row 1 holds 7 \(int\)",
    ) as info:
        extract(ingestion(api_events, max_retries=3), "2024-01-01", tmp_path)
    assert info.value.column == "user_name"
    assert calls == [1]  # phlo's own errors are not retried


def test_mixed_types_across_batches_name_the_column_and_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool_module, "BATCH_ROWS", 10)

    def api_events(partition_date: str) -> Iterator[dict[str, Any]]:
        for i in range(30):
            yield {"event_id": i, "user_name": "a" if i < 13 else i}

    with pytest.raises(
        errors.SchemaError,
        match=r"column 'user_name' mixes types: row 10 holds 'a' \(str\), row 13 holds 13",
    ):
        extract(ingestion(api_events), "2024-01-01", tmp_path)

    def widening(partition_date: str) -> Iterator[dict[str, Any]]:
        for i in range(30):
            # `note` is not in the contract (a contract column would be cast to its type)
            yield {"event_id": i, "note": "a" if i < 20 else i}

    with pytest.raises(
        errors.SchemaError,
        match=r"column 'note' changes type: rows before 20 hold string, row 20 holds 20 \(int64\)",
    ):
        extract(ingestion(widening), "2024-01-01", tmp_path / "2")


def test_a_value_the_schema_type_cannot_hold_names_the_row(tmp_path: Path) -> None:
    data = [
        {"event_id": 1, "date_string": "2024-01-01T00:00:00+00:00"},
        {"event_id": 2, "date_string": "soon"},
    ]
    with pytest.raises(
        errors.SchemaError,
        match=r"column 'date_string' cannot be read as timestamp\[us, tz=\+00:00\] .*row 1 holds 'soon'",
    ):
        extract(ingestion(lambda partition_date: data), "2024-01-01", tmp_path)


@pytest.mark.parametrize(
    "value",
    [
        None,
        [],
        iter([]),
        pa.table({"event_id": pa.array([], pa.int64())}),
        pd.DataFrame({"event_id": []}),
    ],
    ids=["none", "empty-list", "empty-generator", "empty-table", "empty-pandas"],
)
def test_nothing_is_no_data(value: Any, tmp_path: Path) -> None:
    extracted = extract(ingestion(lambda partition_date: value), "2024-01-01", tmp_path)
    assert (extracted.reader, extracted.rows, extracted.source_kind) == (None, 0, "none")


@pytest.mark.parametrize(
    "value", [42, "events", {"event_id": 1}, [1, 2]], ids=["int", "str", "dict", "ints"]
)
def test_an_unreadable_value_says_what_is_accepted(value: Any, tmp_path: Path) -> None:
    with pytest.raises(
        (errors.SourceError, errors.SchemaError), match=r"dict|dlt source or resource"
    ):
        extract(ingestion(lambda partition_date: value), "2024-01-01", tmp_path)
    with pytest.raises(
        errors.SourceError, match=r"returned a int, which phlo cannot read; return a dlt source"
    ):
        extract(ingestion(lambda partition_date: 42), "2024-01-01", tmp_path / "2")


# --- retries -------------------------------------------------------------------------------


def test_a_source_failing_twice_then_succeeding_is_retried_with_backoff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []
    monkeypatch.setattr(sources_module, "_sleep", waits.append)
    calls: list[str] = []

    def flaky(partition_date: str) -> Iterator[dict[str, Any]]:
        calls.append(partition_date)
        yield {"event_id": 1}
        if len(calls) < 3:  # fails mid-stream: the partial rows of the attempt are dropped
            raise ConnectionError(f"reset {len(calls)}")
        yield {"event_id": 2}

    extracted = extract(
        ingestion(flaky, max_retries=3, retry_delay_seconds=2), "2024-01-01", tmp_path
    )
    assert extracted.attempts == 3
    assert rows_of(extracted) == [{"event_id": 1}, {"event_id": 2}]
    assert waits == [2, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attempt-3"]


def test_a_source_failing_always_raises_after_max_retries_plus_one_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources_module, "_sleep", lambda seconds: None)
    calls: list[int] = []

    def broken(partition_date: str) -> Any:
        calls.append(1)
        raise ConnectionError(f"refused #{len(calls)}")

    with pytest.raises(
        errors.SourceError,
        match=r"^broken: the source failed on all 3 attempts \(max_retries=2\); last error: ConnectionError: refused #3$",
    ) as info:
        extract(ingestion(broken, max_retries=2, retry_delay_seconds=1), "2024-01-01", tmp_path)
    assert len(calls) == 3
    assert isinstance(info.value.__cause__, ConnectionError)
    assert info.value.code == "source"


def test_a_retry_that_would_start_after_the_deadline_is_a_timeout(tmp_path: Path) -> None:
    def broken(partition_date: str) -> Any:
        raise ConnectionError("refused")

    definition = ingestion(broken, max_retries=3, retry_delay_seconds=60, max_runtime_seconds=30)
    with pytest.raises(
        errors.IngestionTimeoutError,
        match=r"attempt 1 of 4 failed, and a retry in 60s would start too late.*ConnectionError: refused",
    ):
        extract(definition, "2024-01-01", tmp_path)


# --- timeout -------------------------------------------------------------------------------


def sleeping_source(progress: list[int], *, swallow: bool) -> Callable[[str], Any]:
    def stuck(partition_date: str) -> Any:
        while True:
            try:
                progress.append(1)
                time.sleep(0.05)
            except Exception:  # a retry loop that swallows errors does not swallow the timeout
                if not swallow:
                    raise
        return None

    return stuck


def assert_stopped(progress: list[int]) -> None:
    count = len(progress)
    time.sleep(0.2)
    assert len(progress) == count


@pytest.mark.parametrize("swallow", [False, True])
def test_a_source_stuck_in_python_is_interrupted_on_the_main_thread(
    swallow: bool, tmp_path: Path
) -> None:
    progress: list[int] = []
    definition = ingestion(sleeping_source(progress, swallow=swallow), max_runtime_seconds=0.3)
    with pytest.raises(
        errors.IngestionTimeoutError,
        match=r"^stuck: extraction exceeded max_runtime_seconds=0.3 \(attempt 1 of 4 was interrupted\)",
    ) as info:
        extract(definition, "2024-01-01", tmp_path)
    assert info.value.code == "ingestion_timeout"
    assert isinstance(info.value, TimeoutError)
    assert progress
    assert_stopped(progress)
    # The alarm is given back.
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_source_stuck_in_python_is_interrupted_on_another_thread(tmp_path: Path) -> None:
    progress: list[int] = []
    outcome: list[BaseException] = []
    definition = ingestion(sleeping_source(progress, swallow=True), max_runtime_seconds=0.3)

    def run() -> None:
        try:
            extract(definition, "2024-01-01", tmp_path)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert len(outcome) == 1 and isinstance(outcome[0], errors.IngestionTimeoutError), outcome
    assert_stopped(progress)


def test_a_lazy_source_is_timed_while_its_rows_are_produced(tmp_path: Path) -> None:
    def slow(partition_date: str) -> Iterator[dict[str, Any]]:
        i = 0
        while True:
            yield {"event_id": i}
            i += 1
            time.sleep(0.01)

    with pytest.raises(errors.IngestionTimeoutError):
        extract(ingestion(slow, max_runtime_seconds=0.3), "2024-01-01", tmp_path)
    assert not (tmp_path / "attempt-1").exists()


@pytest.mark.parametrize("http_api", [{"stall": True}], indirect=True)
def test_a_dlt_source_against_a_stalled_server_times_out(
    http_api: EventApi, tmp_path: Path
) -> None:
    """The deadline passes while dlt waits for the stalled server's answer, and its alarm
    breaks the blocked read. The alarm is brought forward to the moment the request arrived:
    setting dlt up (its imports, a cold start: 2 s) can take longer than any fixed limit."""
    definition = ingestion(lambda partition_date: events_source(http_api), max_runtime_seconds=600)
    finished = threading.Event()
    alarm = threading.Thread(target=_alarm_once_requested, args=(http_api, finished))
    alarm.start()
    try:
        with pytest.raises(
            errors.IngestionTimeoutError,
            match=r"max_runtime_seconds=600 \(attempt 1 of 4 was interrupted\)",
        ):
            extract(definition, "2024-01-01", tmp_path)
    finally:
        finished.set()
        alarm.join()
    assert http_api.requests >= 1


def _alarm_once_requested(api: EventApi, finished: threading.Event) -> None:
    """Sets off the deadline's alarm (as its timer does when it passes) once `api` got a
    request, unless the extraction `finished` before."""
    while api.requests == 0:
        if finished.wait(0.01):
            return
    signal.setitimer(signal.ITIMER_REAL, 1e-3, REPEAT)


def busy(partition_date: str) -> Any:
    total = 0
    while True:
        total += 1


def test_many_interrupts_never_leak_out_of_extract_on_the_main_thread(tmp_path: Path) -> None:
    for i in range(20):
        with pytest.raises(errors.IngestionTimeoutError):
            extract(ingestion(busy, max_runtime_seconds=0.01), "2024-01-01", tmp_path / str(i))
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
    time.sleep(REPEAT * 3)  # a stray repeat of the alarm would raise here


def test_many_interrupts_never_leak_out_of_extract_on_another_thread(tmp_path: Path) -> None:
    outcome: list[Any] = []

    def run() -> None:
        try:
            for i in range(20):
                with pytest.raises(errors.IngestionTimeoutError):
                    extract(
                        ingestion(busy, max_runtime_seconds=0.01), "2024-01-01", tmp_path / str(i)
                    )
            deadline = time.monotonic() + REPEAT * 3
            while time.monotonic() < deadline:  # a stray injected interrupt would land here
                pass
            outcome.append("clean")
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert outcome == ["clean"]


@pytest.mark.parametrize("http_api", [{"rows": 30, "page_size": 10, "bad_every": 7}], indirect=True)
def test_dlt_puts_a_value_of_the_wrong_type_in_a_variant_column(
    http_api: EventApi, tmp_path: Path
) -> None:
    definition = ingestion(lambda partition_date: events_source(http_api))
    extracted = extract(definition, "2024-01-01", tmp_path)
    rows = {r["event_id"]: r for r in rows_of(extracted)}
    bad = [i for i in range(30) if http_api.is_bad(i)]
    assert bad == [6, 13, 20, 27]
    for i in range(30):
        expected = record(i, bad=i in bad)["amount"]
        if i in bad:  # null in the typed column, the text in `amount__v_text`
            assert (rows[i]["amount"], rows[i]["amount__v_text"]) == (None, expected)
        else:
            assert (rows[i]["amount"], rows[i]["amount__v_text"]) == (expected, None)


def test_dicts_are_typed_by_a_table_schema_too(tmp_path: Path) -> None:
    data = [{"event_id": i, "amount": i} for i in range(3)]
    definition = ingestion(
        lambda partition_date: data,
        validation_schema=None,
        table_schema={"event_id": pa.int32(), "amount": pa.float64()},
        validate=False,
    )
    extracted = extract(definition, "2024-01-01", tmp_path)
    assert extracted.reader is not None
    assert extracted.reader.schema == pa.schema(
        [("event_id", pa.int32()), ("amount", pa.float64())]
    )
    assert rows_of(extracted) == [{"event_id": i, "amount": float(i)} for i in range(3)]
