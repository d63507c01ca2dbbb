"""One @phlo_ingestion run end to end without Dagster (`.run()`): staging, the Pandera contract
before any write, one commit per run, Write-Audit-Publish on a run branch, re-runs, and
several runs publishing into one table at once."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandera.pandas as pa_schema
import pyarrow as pa
import pytest
from pandera.typing import Series

import phlo
import process_support
from http_source import http_api
from phlo import errors

__all__ = ["http_api"]  # the fixture, used by name below


class Event(pa_schema.DataFrameModel):
    id: Series[str] = pa_schema.Field(nullable=False)
    value: Series[float] = pa_schema.Field(ge=0)
    category: Series[str]

    class Config:
        strict = True
        coerce = True


def day_rows(partition_date, n=5, value=1.0, prefix=""):
    return [
        {"id": f"{prefix}{partition_date}-{i:04d}", "value": value + i, "category": "a"}
        for i in range(n)
    ]


@phlo.phlo_ingestion(table_name="events", unique_key="id", group="api", validation_schema=Event)
def events(partition_date: str):
    return pa.Table.from_pylist(day_rows(partition_date))


@phlo.phlo_ingestion(
    table_name="log",
    unique_key="id",
    group="api",
    validation_schema=Event,
    merge_strategy="append",
)
def event_log(partition_date: str):
    return day_rows(partition_date, n=3)


def rows_of(lh, name="raw.events", ref="main"):
    return lh.table(name, ref).scan().to_arrow()


def test_a_run_stages_validates_merges_and_publishes(lh):
    result = events.run("2025-01-02", lakehouse=lh)
    assert result.status == "published" and result.published
    assert (result.rows_extracted, result.rows_inserted, result.rows_updated) == (5, 5, 0)
    assert result.branch == f"pipeline-run-{result.run_id}" and result.target == "main"
    assert result.contract is not None and result.contract.passed
    assert result.contract.total_count == 5 and result.contract.failed_count == 0
    assert set(result.timings) >= {"extract", "stage", "validate", "merge", "commit", "publish"}
    table = rows_of(lh)
    assert sorted(table.column("id").to_pylist()) == [f"2025-01-02-{i:04d}" for i in range(5)]
    assert set(table.column("_phlo_run_id").to_pylist()) == {result.run_id}
    assert {str(d) for d in table.column("_phlo_partition_date").to_pylist()} == {"2025-01-02"}
    # One snapshot on the table for the run, published by one merge; no branch or staging left.
    history = lh.table("raw.events").history()
    assert history[-1].snapshot_id == result.snapshot_id
    assert [e.run_id for e in lh.log("main", 10) if e.properties.get("wap.published")] == [
        result.run_id
    ]
    assert lh.branches() == ["main"]
    assert not list((lh.root / "staging").rglob("*.parquet"))


def test_rerunning_a_partition_does_not_duplicate_rows(lh):
    events.run("2025-01-02", lakehouse=lh)
    again = events.run("2025-01-02", lakehouse=lh)
    assert (again.rows_inserted, again.rows_updated) == (0, 5)
    events.run("2025-01-03", lakehouse=lh)
    assert rows_of(lh).num_rows == 10


def test_append_rerun_replaces_the_partitions_rows(lh):
    event_log.run("2025-01-02", lakehouse=lh)
    event_log.run("2025-01-03", lakehouse=lh)
    event_log.run("2025-01-02", lakehouse=lh)
    table = rows_of(lh, "raw.log")
    assert table.num_rows == 6
    assert sorted(table.column("id").to_pylist()) == sorted(
        r["id"] for d in ("2025-01-02", "2025-01-03") for r in day_rows(d, n=3)
    )


def test_no_data_writes_nothing(lh):
    @phlo.phlo_ingestion(table_name="empty", unique_key="id", group="g", validation_schema=Event)
    def nothing(partition_date: str):
        return None

    result = nothing.run("2025-01-02", lakehouse=lh)
    assert result.status == "no_data" and result.snapshot_id is None
    assert result.contract.passed and result.contract.total_count == 0
    assert lh.table("raw.empty").current_snapshot_id is None  # created, never written
    assert lh.branches() == ["main"]


def test_a_strict_contract_failure_writes_nothing_and_keeps_the_evidence(lh):
    events.run("2025-01-01", lakehouse=lh)
    before = lh.table("raw.events").current_snapshot_id

    @phlo.phlo_ingestion(table_name="events", unique_key="id", group="api", validation_schema=Event)
    def bad(partition_date: str):
        good = day_rows(partition_date, n=4)
        bad_rows = [
            {"id": "neg-1", "value": -5.0, "category": "b"},
            {"id": "neg-2", "value": -1.0, "category": "b"},
        ]
        return [*good, *bad_rows]

    with pytest.raises(errors.ValidationError, match="contract failed") as info:
        bad.run("2025-01-02", lakehouse=lh)
    result = info.value.result
    assert result.status == "failed_contract"
    contract = result.contract
    assert not contract.passed and contract.severity == "error"
    assert (contract.failed_count, contract.total_count) == (2, 6)
    assert {s["failure_case"] for s in contract.sample} == {"-5.0", "-1.0"}
    assert set(contract.metadata()) == {
        "source",
        "partition_key",
        "failed_count",
        "total_count",
        "query_or_sql",
        "sample",
        "repro_sql",
    }
    assert lh.table("raw.events").current_snapshot_id == before
    assert rows_of(lh).num_rows == 5
    assert result.branch in lh.branches()  # kept for investigation
    assert result.staged_files and all(f.exists() for f in result.staged_files)
    # The repro query finds exactly the failing rows in the kept staged files.
    failing = duckdb.sql(contract.repro_sql).to_arrow_table()
    assert sorted(failing.column("id").to_pylist()) == ["neg-1", "neg-2"]


def test_a_lenient_contract_reports_and_writes(lh):
    @phlo.phlo_ingestion(
        table_name="events",
        unique_key="id",
        group="api",
        validation_schema=Event,
        strict_validation=False,
    )
    def lenient(partition_date: str):
        return [{"id": "neg", "value": -5.0, "category": "b"}]

    result = lenient.run("2025-01-02", lakehouse=lh)
    assert result.status == "published"
    assert not result.contract.passed and result.contract.severity == "warn"
    assert rows_of(lh).column("id").to_pylist() == ["neg"]


def test_merge_config_and_no_metadata_columns(lh):
    @phlo.phlo_ingestion(
        table_name="firsts",
        unique_key="id",
        group="g",
        validation_schema=Event,
        merge_config={"deduplication_method": "first"},
        add_metadata_columns=False,
    )
    def firsts(partition_date: str):
        return [
            {"id": "a", "value": 1.0, "category": "first"},
            {"id": "a", "value": 2.0, "category": "second"},
        ]

    result = firsts.run("2025-01-02", lakehouse=lh)
    assert result.duplicates_dropped == 1
    table = rows_of(lh, "raw.firsts")
    assert table.column_names == ["id", "value", "category"]
    assert table.column("category").to_pylist() == ["first"]


def test_the_project_lakehouse_is_used_when_none_is_given(tmp_path, monkeypatch):
    monkeypatch.delenv("PHLO_LAKEHOUSE", raising=False)
    (tmp_path / "phlo.yaml").write_text("lakehouse: lake\nnamespace: bronze\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    result = events.run("2025-01-02")
    assert result.table == "bronze.events"
    lake = phlo.Lakehouse.open(tmp_path / "lake")
    assert rows_of(lake, "bronze.events").num_rows == 5


def test_wap_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.delenv("PHLO_LAKEHOUSE", raising=False)
    (tmp_path / "phlo.yaml").write_text("wap: {enabled: false}\n")
    monkeypatch.chdir(tmp_path)
    result = events.run("2025-01-02")
    assert result.status == "published" and result.branch == "main"
    assert rows_of(phlo.Lakehouse.open(tmp_path / ".phlo")).num_rows == 5


def test_bad_partition_dates_are_refused(lh):
    with pytest.raises(errors.InputError, match="partition_date"):
        events.run("yesterday", lakehouse=lh)


# -- several runs at once -----------------------------------------------------------------


@phlo.phlo_ingestion(table_name="busy", unique_key="id", group="g", validation_schema=Event)
def busy_merge(partition_date: str):
    # Keys of every partition interleave (same prefixes), so no run owns a key range.
    return [
        {"id": f"{i:03d}-{partition_date}", "value": float(i), "category": "m"} for i in range(50)
    ]


@phlo.phlo_ingestion(
    table_name="busy_log",
    unique_key="id",
    group="g",
    validation_schema=Event,
    merge_strategy="append",
)
def busy_append(partition_date: str):
    return day_rows(partition_date, n=50)


def _run_partition(root, name, partition_date, barrier, results):
    definition = {"merge": busy_merge, "append": busy_append}[name]
    lh = phlo.Lakehouse.open(root)
    barrier.wait()
    try:
        result = definition.run(partition_date, lakehouse=lh)
        results.put((partition_date, result.status))
    except Exception as e:  # reported to the parent, which asserts there are none
        results.put((partition_date, f"{type(e).__name__}: {e}"))


@pytest.mark.parametrize(("name", "table"), [("merge", "raw.busy"), ("append", "raw.busy_log")])
def test_four_partitions_at_once_all_publish(lh, name, table):
    dates = [f"2025-02-0{d}" for d in range(1, 5)]
    ctx = process_support.context()
    barrier, results = ctx.Barrier(len(dates)), ctx.Queue()
    procs = [
        ctx.Process(target=_run_partition, args=(str(lh.root), name, d, barrier, results))
        for d in dates
    ]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=600) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert outcomes == {d: "published" for d in dates}
    data = rows_of(lh, table)
    assert data.num_rows == 200
    assert {str(d) for d in data.column("_phlo_partition_date").to_pylist()} == set(dates)
    assert [b for b in lh.branches() if b != "main"] == []


def test_a_failed_commit_keeps_the_staged_input_and_says_where(lh):
    # The table exists with a column type the contract's rows cannot be written into.
    lh.create_table(
        "raw.events", {"id": pa.string(), "value": pa.date32(), "category": pa.string()}
    )
    with pytest.raises(errors.SchemaError) as info:
        events.run("2025-01-02", lakehouse=lh)
    note = " ".join(getattr(info.value, "__notes__", []))
    assert "staged input is kept in" in note
    staged = note.split("kept in ", 1)[1].rstrip(".")
    assert list(Path(staged).glob("*.parquet"))
    assert lh.table("raw.events").current_snapshot_id is None


def test_a_partition_spec_partitions_the_created_table(lh):
    @phlo.phlo_ingestion(
        table_name="by_day",
        unique_key="id",
        group="g",
        validation_schema=Event,
        partition_spec="_phlo_partition_date",
    )
    def by_day(partition_date: str):
        return day_rows(partition_date, n=2)

    by_day.run("2025-01-02", lakehouse=lh)
    by_day.run("2025-01-03", lakehouse=lh)
    table = lh.table("raw.by_day")
    assert [(f.source_column, f.transform) for f in table.partition_spec] == [
        ("_phlo_partition_date", "identity")
    ]
    scan = table.scan(filter=("_phlo_partition_date", "==", "2025-01-03"))
    assert (scan.files_scanned, scan.to_arrow().num_rows) == (1, 2)


# -- a real dlt rest_api source, end to end -------------------------------------------------


class ApiEvent(pa_schema.DataFrameModel):
    """The HTTP fixture's records as dlt normalizes them (snake_case, nested data as JSON)."""

    event_id: Series[int] = pa_schema.Field(ge=0)
    user_name: Series[str]
    amount: Series[float] = pa_schema.Field(nullable=False)
    details: Series[str]


def api_ingestion(api):
    @phlo.phlo_ingestion(
        table_name="api_events", unique_key="event_id", group="api", validation_schema=ApiEvent
    )
    def api_events(partition_date: str):
        from dlt.sources.rest_api import rest_api_source

        return rest_api_source(
            {
                "client": {"base_url": api.base_url, "paginator": PAGINATOR},
                "resources": [
                    {"name": "api_events", "endpoint": {"path": "events", "data_selector": "data"}}
                ],
            }
        )

    return api_events


PAGINATOR = {
    "type": "page_number",
    "page_param": "page",
    "base_page": 1,
    "total_path": "total_pages",
}


@pytest.mark.parametrize("http_api", [{"rows": 1200, "page_size": 100}], indirect=True)
def test_a_dlt_rest_api_source_publishes_every_page(lh, http_api):
    result = api_ingestion(http_api).run("2025-01-02", lakehouse=lh)
    assert result.status == "published" and result.rows_inserted == 1200
    table = rows_of(lh, "raw.api_events")
    assert sorted(table.column("event_id").to_pylist()) == list(range(1200))
    assert "_dlt_id" not in table.column_names
    again = api_ingestion(http_api).run("2025-01-02", lakehouse=lh)
    assert (again.rows_inserted, again.rows_updated) == (0, 1200)
    assert rows_of(lh, "raw.api_events").num_rows == 1200


@pytest.mark.parametrize(
    "http_api", [{"rows": 300, "page_size": 100, "bad_every": 50}], indirect=True
)
def test_bad_api_rows_fail_the_contract_before_any_write(lh, http_api):
    with pytest.raises(errors.ValidationError) as info:
        api_ingestion(http_api).run("2025-01-02", lakehouse=lh)
    contract = info.value.result.contract
    # dlt moves a string amount to a variant column, leaving amount null in those rows.
    assert (contract.failed_count, contract.total_count) == (6, 300)
    assert lh.table("raw.api_events").current_snapshot_id is None
