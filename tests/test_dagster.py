"""phlo.dagster on a real project folder: what `definitions()` declares, materializing
partitions in process with Write-Audit-Publish, and the errors of a broken project."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest
from tests.dagster_support import (
    instance,
    lakehouse_of,
    materialize,
    project,
    published_runs,
    rows,
    run_and_promote,
    run_branches,
)

import phlo.dagster
from phlo.errors import ConfigError

__all__ = ["instance", "project"]  # fixtures

BAD_DAY = "2025-01-13"  # tests/projects/events/workflows/ingestion/api/data.py


def events_of(partition_date: str) -> list[dict[str, object]]:
    """The oracle: the rows the project's source yields for a day (same rule as data.py)."""
    day = (dt.date.fromisoformat(partition_date) - dt.date(2025, 1, 1)).days + 1
    return [{"id": day * 1000 + i, "category": "abc"[i % 3], "value": float(i)} for i in range(5)]


def test_definitions_declare_assets_checks_schedules_and_sensors(project: Path) -> None:
    defs = phlo.dagster.definitions(project)
    dg.Definitions.validate_loadable(defs)
    keys = {a.key.to_user_string() for a in defs.assets}  # type: ignore[union-attr]
    assert keys == {"dlt_events", "dlt_clicks", "dlt_users"}

    events = defs.get_assets_def("dlt_events")
    spec = next(iter(events.specs))
    assert spec.group_name == "api" and spec.kinds == {"dlt", "iceberg"}
    assert spec.description == "Events of the API, one partition a day."
    assert spec.metadata["dagster/table_name"] == "raw.events"
    assert spec.freshness_policy == dg.FreshnessPolicy.time_window(
        fail_window=dt.timedelta(hours=24), warn_window=dt.timedelta(hours=1)
    )
    assert next(iter(defs.get_assets_def("dlt_users").specs)).freshness_policy is None
    retry = events.op.retry_policy
    assert retry is not None
    assert (retry.max_retries, retry.delay, retry.backoff) == (2, 1, dg.Backoff.EXPONENTIAL)

    # One partitions definition for the project's ingestions (so they run together): it
    # ends a day later (today's partition exists) because events' cron is hourly.
    partitions = events.partitions_def
    assert isinstance(partitions, dg.DailyPartitionsDefinition)
    assert partitions.start.date() == dt.date(2025, 1, 1) and partitions.end_offset == 1
    assert partitions.timezone == "UTC"
    assert defs.get_assets_def("dlt_clicks").partitions_def == partitions
    assert defs.get_assets_def("dlt_users").partitions_def == partitions

    checks = {
        (c.asset_key.to_user_string(), c.name): c.blocking
        for a in defs.assets
        for c in a.check_specs
    }  # type: ignore[union-attr]
    assert checks == {
        ("dlt_events", "pandera_contract"): True,
        ("dlt_clicks", "pandera_contract"): False,  # strict_validation=False
        ("dlt_users", "pandera_contract"): True,
    }

    schedules = {s.name: s for s in defs.schedules or []}  # type: ignore[union-attr]
    assert set(schedules) == {"dlt_events_schedule", "dlt_clicks_schedule"}
    assert schedules["dlt_events_schedule"].cron_schedule == "0 */1 * * *"
    assert schedules["dlt_clicks_schedule"].cron_schedule == "30 2 * * *"
    # phlo.yaml says schedules.default_status: stopped
    assert {s.default_status for s in schedules.values()} == {dg.DefaultScheduleStatus.STOPPED}
    job = defs.resolve_job_def("dlt_events_job")
    assert job.run_tags["dagster/max_runtime"] == "120"

    sensors = {s.name: s.default_status for s in defs.sensors or []}  # type: ignore[union-attr]
    assert sensors == {
        "branch_creation_sensor": dg.DefaultSensorStatus.RUNNING,
        "auto_promotion_sensor": dg.DefaultSensorStatus.RUNNING,
        "publication_retry_sensor": dg.DefaultSensorStatus.RUNNING,
        "branch_cleanup_sensor": dg.DefaultSensorStatus.RUNNING,
    }
    resource = (defs.resources or {})["phlo"]
    assert isinstance(resource, phlo.dagster.PhloResource)
    assert Path(resource.lakehouse) == project / ".phlo" and resource.target == "main"


def test_schedules_request_the_partition_of_the_tick(project: Path) -> None:
    defs = phlo.dagster.definitions(project)
    by_name = {s.name: s for s in defs.schedules or []}  # type: ignore[union-attr]
    tick = dt.datetime(2025, 3, 5, 7, 0, tzinfo=dt.UTC)

    repository = defs.get_repository_def()

    def tick_of(name: str, at: dt.datetime) -> list[dg.RunRequest]:
        context = dg.build_schedule_context(scheduled_execution_time=at, repository_def=repository)
        return list(by_name[name].evaluate_tick(context).run_requests or [])

    def requested(name: str, at: dt.datetime) -> list[str | None]:
        return [r.partition_key for r in tick_of(name, at)]

    # Hourly: the day of the tick; daily: the last complete day.
    assert requested("dlt_events_schedule", tick) == ["2025-03-05"]
    assert requested("dlt_clicks_schedule", tick) == ["2025-03-04"]
    (request,) = tick_of("dlt_events_schedule", tick)
    assert request.tags["dagster/max_runtime"] == "120"
    # Before the first partition nothing is requested.
    before = dt.datetime(2025, 1, 1, 0, 30, tzinfo=dt.UTC)
    assert requested("dlt_clicks_schedule", before) == []
    assert requested("dlt_events_schedule", before) == ["2025-01-01"]


def test_a_materialized_partition_lands_on_main_after_promotion(
    project: Path, instance: dg.DagsterInstance
) -> None:
    defs = phlo.dagster.definitions(project)
    result = materialize(defs, ["dlt_events"], "2025-01-02", instance)
    branch = f"pipeline-run-{result.run_id}"
    # Written to the run's branch only: main has the (empty) table, not the rows.
    assert rows(project, "raw.events", branch) == events_of("2025-01-02")
    assert rows(project, "raw.events") == []
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    assert run.tags["phlo/branch"] == branch and run.tags["phlo/target"] == "main"
    assert Path(run.tags["phlo/lakehouse"]) == project / ".phlo"

    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert metadata["dagster/row_count"].value == 5
    assert metadata["dagster/table_name"].value == "raw.events"
    schema = metadata["dagster/column_schema"].value
    assert isinstance(schema, dg.TableSchema)
    assert [c.name for c in schema.columns][:3] == ["id", "category", "value"]
    assert metadata["phlo/branch"].value == branch
    assert metadata["phlo/rows_inserted"].value == 5
    assert metadata["phlo/rows_updated"].value == 0
    assert metadata["phlo/duplicates_dropped"].value == 0
    snapshot = lakehouse_of(project).table("raw.events", branch).current_snapshot_id
    assert metadata["phlo/snapshot_id"].value == str(snapshot)
    assert {"phlo/seconds_extract", "phlo/seconds_validate", "phlo/seconds_commit"} <= set(metadata)
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "pandera_contract" and check.passed
    assert check.metadata["total_count"].value == 5
    assert check.metadata["failed_count"].value == 0
    assert check.metadata["partition_key"].value == "2025-01-02"

    promotion = phlo.dagster.promote(instance, result.run_id)
    assert promotion.status == "published"
    assert rows(project, "raw.events") == events_of("2025-01-02")
    assert run_branches(project) == []
    assert published_runs(project) == [result.run_id]
    tags = instance.get_run_by_id(result.run_id).tags  # type: ignore[union-attr]
    assert tags["phlo/promotion"] == "published"
    assert tags["phlo/promotion_commit"] == promotion.promotion.commit.commit_id  # type: ignore[union-attr]


def test_rerunning_a_partition_does_not_duplicate_rows(
    project: Path, instance: dg.DagsterInstance
) -> None:
    defs = phlo.dagster.definitions(project)
    for _ in range(2):
        for key in ("dlt_events", "dlt_clicks"):  # merge and append strategies
            assert run_and_promote(defs, [key], "2025-01-03", instance).status == "published"
    run_and_promote(defs, ["dlt_events"], "2025-01-04", instance)
    assert rows(project, "raw.events") == events_of("2025-01-03") + events_of("2025-01-04")
    assert rows(project, "raw.clicks") == events_of("2025-01-03")


def test_a_run_publishes_all_its_tables_in_one_merge(
    project: Path, instance: dg.DagsterInstance
) -> None:
    defs = phlo.dagster.definitions(project)
    result = materialize(defs, ["dlt_clicks", "dlt_users"], "2025-01-02", instance)
    before = lakehouse_of(project).log("main", 1000)
    assert phlo.dagster.promote(instance, result.run_id).status == "published"
    new = lakehouse_of(project).log("main", 1000)[: -len(before)]
    assert len(new) == 1
    assert sorted(new[0].tables) == ["raw.clicks", "raw.users"]
    assert new[0].properties["wap.published"] == result.run_id
    assert rows(project, "raw.clicks") == events_of("2025-01-02")
    assert [r["id"] for r in rows(project, "raw.users")] == [0, 1, 2]


def test_a_failing_contract_fails_the_run_and_leaves_main_untouched(
    project: Path, instance: dg.DagsterInstance
) -> None:
    defs = phlo.dagster.definitions(project)
    run_and_promote(defs, ["dlt_events"], "2025-01-12", instance)
    main_before = lakehouse_of(project).table("raw.events").current_snapshot_id

    result = materialize(defs, ["dlt_events"], BAD_DAY, instance, raise_on_error=False)
    assert not result.success
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["failed_count"].value == 1
    assert check.metadata["total_count"].value == 5
    assert "read_parquet" in check.metadata["repro_sql"].value
    assert result.get_asset_materialization_events() == []
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert "raw.events partition 2025-01-13" in message and "nothing was written" in message
    # The contract failure is not retried (the retry policy would run it 2 more times).
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED]
    assert phlo.dagster.failed_blocking_checks(instance, result.run_id) == [
        "dlt_events:pandera_contract"
    ]

    promotion = phlo.dagster.promote(instance, result.run_id)
    assert promotion.status == "blocked" and "FAILURE" in promotion.reason
    assert lakehouse_of(project).table("raw.events").current_snapshot_id == main_before
    assert rows(project, "raw.events") == events_of("2025-01-12")
    assert run_branches(project) == [f"pipeline-run-{result.run_id}"]
    tags = instance.get_run_by_id(result.run_id).tags  # type: ignore[union-attr]
    assert tags["phlo/promotion"] == "blocked"


def test_a_non_strict_contract_warns_writes_and_publishes(
    project: Path, instance: dg.DagsterInstance
) -> None:
    defs = phlo.dagster.definitions(project)
    result = materialize(defs, ["dlt_clicks"], BAD_DAY, instance)
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert phlo.dagster.failed_blocking_checks(instance, result.run_id) == []
    assert phlo.dagster.promote(instance, result.run_id).status == "published"
    assert [r["value"] for r in rows(project, "raw.clicks")] == [0.0, 1.0, -1.0, 3.0, 4.0]


def test_no_data_materializes_zero_rows_with_a_passing_check(
    project: Path, instance: dg.DagsterInstance
) -> None:
    defs = phlo.dagster.definitions(project)
    result = materialize(defs, ["dlt_users"], "2025-01-04", instance)  # a Saturday
    (event,) = result.get_asset_materialization_events()
    assert event.materialization.metadata["dagster/row_count"].value == 0
    assert event.materialization.metadata["phlo/status"].value == "no_data"
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["total_count"].value == 0
    # Publishing a run that wrote nothing merges nothing (an empty log entry) and removes
    # its branch.
    promotion = phlo.dagster.promote(instance, result.run_id)
    assert promotion.status == "published" and promotion.promotion is not None
    assert promotion.promotion.tables == [] and run_branches(project) == []
    assert rows(project, "raw.users") == []


def test_the_resource_reads_tables_at_the_runs_branch(
    project: Path, instance: dg.DagsterInstance
) -> None:
    defs = phlo.dagster.definitions(project)
    seen: dict[str, object] = {}

    # Dagster reads these annotations at definition time (no `from __future__ import
    # annotations` in this module).
    @dg.asset(deps=["dlt_clicks"], partitions_def=defs.get_assets_def("dlt_clicks").partitions_def)
    def click_count(context: dg.AssetExecutionContext, phlo: phlo.dagster.PhloResource) -> None:
        table = phlo.table("raw.clicks", context)
        seen["ref"], seen["rows"] = table.ref, table.to_arrow().num_rows

    # As docs/dagster.md shows: user assets join phlo's definitions.
    dg.Definitions.validate_loadable(
        dg.Definitions.merge(defs, dg.Definitions(assets=[click_count]))
    )
    result = dg.materialize(
        [defs.get_assets_def("dlt_clicks"), click_count],
        partition_key="2025-01-02",
        instance=instance,
        resources=defs.resources,
    )
    assert seen == {"ref": f"pipeline-run-{result.run_id}", "rows": 5}
    assert rows(project, "raw.clicks") == []  # unpublished


def write_module(project: Path, relative: str, text: str) -> None:
    path = project / "workflows" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_module_that_fails_to_import_is_a_config_error_naming_the_file(project: Path) -> None:
    write_module(project, "ingestion/broken.py", "import workflows.schemas.missing\n")
    with pytest.raises(ConfigError) as raised:
        phlo.dagster.definitions(project)
    message = str(raised.value)
    assert str(project / "workflows" / "ingestion" / "broken.py") in message
    assert "ModuleNotFoundError" in message and "workflows.schemas.missing" in message


def test_two_ingestions_of_one_table_are_a_config_error_naming_both(project: Path) -> None:
    write_module(
        project,
        "ingestion/again.py",
        "from phlo import phlo_ingestion\n"
        "from workflows.schemas.events import EventSchema\n\n"
        "@phlo_ingestion(table_name='events', unique_key='id', group='g',"
        " validation_schema=EventSchema)\n"
        "def more_events(partition_date):\n    return None\n",
    )
    with pytest.raises(ConfigError) as raised:
        phlo.dagster.definitions(project)
    message = str(raised.value)
    assert "'events'" in message
    assert "ingestion/api/events.py:api_events" in message
    assert "ingestion/again.py:more_events" in message


def test_projects_loaded_one_after_another_each_get_their_own_modules(
    project: Path, tmp_path: Path
) -> None:
    phlo.dagster.definitions(project)
    other = tmp_path / "other"
    (other / "workflows").mkdir(parents=True)
    (other / "phlo.yaml").write_text("namespace: crm\n")
    write_module(
        other,
        "people.py",
        "from phlo import phlo_ingestion\n\n"
        "@phlo_ingestion(table_name='people', unique_key='id', group='crm',"
        " table_schema={'id': __import__('pyarrow').int64()}, validate=False)\n"
        "def people(partition_date):\n    return None\n",
    )
    defs = phlo.dagster.definitions(other)
    assert [a.key.to_user_string() for a in defs.assets] == ["dlt_people"]  # type: ignore[union-attr]
    assert (
        defs.get_assets_def("dlt_people")
        .specs_by_key[dg.AssetKey("dlt_people")]
        .metadata["dagster/table_name"]
        == "crm.people"
    )


def test_a_failing_source_is_retried_and_the_run_publishes(
    project: Path, instance: dg.DagsterInstance
) -> None:
    calls = project / "calls.txt"
    write_module(
        project,
        "ingestion/flaky.py",
        "from pathlib import Path\n"
        "from phlo import phlo_ingestion\n"
        "from workflows.schemas.events import UserSchema\n\n"
        f"CALLS = Path({str(calls)!r})\n\n"
        "@phlo_ingestion(table_name='flaky', unique_key='id', group='g',"
        " validation_schema=UserSchema, max_retries=2, retry_delay_seconds=0.1)\n"
        "def flaky(partition_date):\n"
        "    CALLS.write_text(CALLS.read_text() + 'x' if CALLS.exists() else 'x')\n"
        "    if CALLS.read_text() == 'x':\n"
        "        raise ConnectionError('the API hung up')\n"
        "    return [{'id': 1, 'name': 'back'}]\n",
    )
    defs = phlo.dagster.definitions(project)
    result = materialize(defs, ["dlt_flaky"], "2025-01-02", instance)
    assert calls.read_text() == "xx"  # failed once, then succeeded
    assert phlo.dagster.promote(instance, result.run_id).status == "published"
    assert rows(project, "raw.flaky") == [{"id": 1, "name": "back"}]


def test_with_wap_off_runs_write_straight_to_the_target(
    project: Path, instance: dg.DagsterInstance
) -> None:
    config = project / "phlo.yaml"
    config.write_text(config.read_text().replace("enabled: true", "enabled: false"))
    defs = phlo.dagster.definitions(project)
    result = materialize(defs, ["dlt_events"], "2025-01-02", instance)
    assert rows(project, "raw.events") == events_of("2025-01-02")
    assert lakehouse_of(project).branches() == ["main"]
    tags = instance.get_run_by_id(result.run_id).tags  # type: ignore[union-attr]
    assert "phlo/branch" not in tags and tags["phlo/target"] == "main"
    assert phlo.dagster.promote(instance, result.run_id).status == "no_branch"


def test_a_source_failing_every_attempt_fails_the_run_without_retrying_the_step(
    project: Path, instance: dg.DagsterInstance
) -> None:
    calls = project / "calls.txt"
    write_module(
        project,
        "ingestion/down.py",
        "from pathlib import Path\n"
        "from phlo import phlo_ingestion\n"
        "from workflows.schemas.events import UserSchema\n\n"
        "@phlo_ingestion(table_name='down', unique_key='id', group='g',"
        " validation_schema=UserSchema, max_retries=2, retry_delay_seconds=0.01)\n"
        "def down(partition_date):\n"
        f"    calls = Path({str(calls)!r})\n"
        "    calls.write_text((calls.read_text() if calls.exists() else '') + 'x')\n"
        "    raise ConnectionError('the API is down')\n",
    )
    defs = phlo.dagster.definitions(project)
    result = materialize(defs, ["dlt_down"], "2025-01-02", instance, raise_on_error=False)
    assert not result.success
    # Extraction tried 1 + max_retries times; the step was not run again on top of that.
    assert calls.read_text() == "xxx"
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_RESTARTED]
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.user_failure_data.description  # type: ignore[union-attr]
    assert "failed on all 3 attempts" in message and "the API is down" in message
    assert phlo.dagster.promote(instance, result.run_id).status == "blocked"
    assert rows(project, "raw.down") == []
