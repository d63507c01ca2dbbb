"""Write-Audit-Publish under Dagster: the three sensors, promotion after a crash, and four
runs of different partitions of one table publishing at once (merge and append)."""

import subprocess
import sys
import uuid
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
    run_branches,
)
from tests.test_dagster import events_of

import phlo
import phlo.dagster
from phlo import wap

__all__ = ["instance", "project"]  # fixtures


def sensor(defs: dg.Definitions, name: str) -> dg.SensorDefinition:
    (found,) = [s for s in defs.sensors or [] if s.name == name]  # type: ignore[union-attr]
    assert isinstance(found, dg.SensorDefinition)
    return found


def add_run(
    instance: dg.DagsterInstance,
    status: dg.DagsterRunStatus,
    assets: list[str] | None = None,
    job_name: str = "__ASSET_JOB",
) -> dg.DagsterRun:
    run = dg.DagsterRun(
        job_name=job_name,
        run_id=str(uuid.uuid4()),
        status=status,
        asset_selection=frozenset(dg.AssetKey(a) for a in assets) if assets else None,
    )
    return instance.add_run(run)


def run_status_context(
    instance: dg.DagsterInstance, run: dg.DagsterRun, event: dg.DagsterEventType, name: str
) -> dg.RunStatusSensorContext:
    return dg.build_run_status_sensor_context(
        sensor_name=name,
        dagster_event=dg.DagsterEvent(event.value, run.job_name),
        dagster_instance=instance,
        dagster_run=run,
    )


def test_branch_creation_sensor_creates_the_branch_of_phlo_runs_once(
    project: Path, instance: dg.DagsterInstance
) -> None:
    defs = phlo.dagster.definitions(project)
    creation = sensor(defs, "branch_creation_sensor")
    run = add_run(instance, dg.DagsterRunStatus.STARTED, ["dlt_events"])
    context = run_status_context(instance, run, dg.DagsterEventType.RUN_START, creation.name)
    for _ in range(2):  # idempotent
        creation(context)
        assert run_branches(project) == [f"pipeline-run-{run.run_id}"]
    lh = lakehouse_of(project)
    # The project's tables were created on main first, so the branch holds them.
    assert lh.tables("raw") == ["raw.clicks", "raw.events", "raw.users"]
    assert lh.table("raw.events", f"pipeline-run-{run.run_id}").to_arrow().num_rows == 0
    tags = instance.get_run_by_id(run.run_id).tags  # type: ignore[union-attr]
    assert tags["phlo/branch"] == f"pipeline-run-{run.run_id}"
    assert Path(tags["phlo/lakehouse"]) == project / ".phlo"

    # A running run is not published, and not marked.
    outcome = phlo.dagster.promote(instance, run.run_id)
    assert outcome.status == "blocked" and "STARTED" in outcome.reason
    assert "phlo/promotion" not in instance.get_run_by_id(run.run_id).tags  # type: ignore[union-attr]
    assert run_branches(project) == [f"pipeline-run-{run.run_id}"]

    # Runs that materialize no phlo ingestion, and runs already finished, get no branch.
    other = add_run(instance, dg.DagsterRunStatus.STARTED, ["someone_elses_asset"])
    creation(run_status_context(instance, other, dg.DagsterEventType.RUN_START, creation.name))
    done = add_run(instance, dg.DagsterRunStatus.SUCCESS, ["dlt_events"])
    creation(run_status_context(instance, done, dg.DagsterEventType.RUN_START, creation.name))
    job_run = add_run(instance, dg.DagsterRunStatus.STARTED, job_name="dlt_clicks_job")
    creation(run_status_context(instance, job_run, dg.DagsterEventType.RUN_START, creation.name))
    assert sorted(run_branches(project)) == sorted(
        [f"pipeline-run-{run.run_id}", f"pipeline-run-{job_run.run_id}"]
    )


def test_auto_promotion_sensor_publishes_a_succeeded_run_once(
    project: Path, instance: dg.DagsterInstance
) -> None:
    defs = phlo.dagster.definitions(project)
    promotion_sensor = sensor(defs, "auto_promotion_sensor")
    result = materialize(defs, ["dlt_clicks"], "2025-01-05", instance)
    run = instance.get_run_by_id(result.run_id)
    assert run is not None
    context = run_status_context(
        instance, run, dg.DagsterEventType.RUN_SUCCESS, promotion_sensor.name
    )
    promotion_sensor(context)
    assert rows(project, "raw.clicks") == events_of("2025-01-05")
    assert instance.get_run_by_id(run.run_id).tags["phlo/promotion"] == "published"  # type: ignore[union-attr]
    promotion_sensor(context)  # delivered twice: nothing merges again
    assert published_runs(project) == [run.run_id]
    assert rows(project, "raw.clicks") == events_of("2025-01-05")
    assert run_branches(project) == []


def test_promotion_retried_after_a_crash_does_not_merge_twice(
    project: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = phlo.dagster.definitions(project)
    result = materialize(defs, ["dlt_clicks"], "2025-01-06", instance)  # append strategy
    real_delete = phlo.Lakehouse.delete_branch
    crashes = []

    def crash_once(self: phlo.Lakehouse, name: str) -> None:
        if not crashes:
            crashes.append(name)
            raise OSError("the process died after the merge")
        real_delete(self, name)

    monkeypatch.setattr(phlo.Lakehouse, "delete_branch", crash_once)
    with pytest.raises(OSError, match="died after the merge"):
        phlo.dagster.promote(instance, result.run_id)
    # The merge happened; the branch is still there and the run is not marked.
    assert rows(project, "raw.clicks") == events_of("2025-01-06")
    assert run_branches(project) == [f"pipeline-run-{result.run_id}"]
    assert "phlo/promotion" not in instance.get_run_by_id(result.run_id).tags  # type: ignore[union-attr]

    again = phlo.dagster.promote(instance, result.run_id)
    assert again.status == "already_published"
    assert rows(project, "raw.clicks") == events_of("2025-01-06")  # not appended twice
    assert published_runs(project) == [result.run_id]
    assert run_branches(project) == []
    assert instance.get_run_by_id(result.run_id).tags["phlo/promotion"] == "published"  # type: ignore[union-attr]


def set_retention(project: Path, hours: float) -> None:
    config = project / "phlo.yaml"
    config.write_text(
        config.read_text().replace("branch_retention_hours: 24", f"branch_retention_hours: {hours}")
    )


@pytest.mark.parametrize("retention_hours", [0, 24])
def test_cleanup_removes_only_finished_runs_branches_past_the_retention(
    project: Path, instance: dg.DagsterInstance, retention_hours: float
) -> None:
    set_retention(project, retention_hours)
    defs = phlo.dagster.definitions(project)
    lh = lakehouse_of(project)
    failed = materialize(defs, ["dlt_events"], "2025-01-13", instance, raise_on_error=False)
    succeeded = materialize(defs, ["dlt_events"], "2025-01-02", instance)  # not promoted yet
    running = add_run(instance, dg.DagsterRunStatus.STARTED, ["dlt_events"])
    wap.ensure_run_branch(lh, running.run_id)
    unknown = "not-a-dagster-run"
    wap.ensure_run_branch(lh, unknown)
    blocked = materialize(defs, ["dlt_clicks"], "2025-01-02", instance)
    instance.add_run_tags(blocked.run_id, {"phlo/promotion": "conflict"})  # promotion gave up
    every = {f"pipeline-run-{r}" for r in (failed.run_id, succeeded.run_id, running.run_id)}
    every |= {f"pipeline-run-{unknown}", f"pipeline-run-{blocked.run_id}"}
    assert set(run_branches(project)) == every

    cleanup = sensor(defs, "branch_cleanup_sensor")
    cleanup(dg.build_sensor_context(instance=instance))
    if retention_hours:
        assert set(run_branches(project)) == every  # all younger than the retention
    else:
        assert set(run_branches(project)) == {
            f"pipeline-run-{succeeded.run_id}",  # waiting to be published
            f"pipeline-run-{running.run_id}",
        }
    # The kept successful run still publishes.
    assert phlo.dagster.promote(instance, succeeded.run_id).status == "published"
    assert rows(project, "raw.events") == events_of("2025-01-02")


CONCURRENT_RUN = """
import sys, time
from pathlib import Path
import dagster as dg
import phlo.dagster

project, key, partition, barrier = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])

def wait(step, n=4):
    (barrier / f"{step}-{partition}").touch()
    deadline = time.monotonic() + 600  # four Dagster processes starting on a loaded machine
    while len(list(barrier.glob(f"{step}-*"))) < n:
        if time.monotonic() > deadline:
            sys.exit(f"barrier {step} timed out")
        time.sleep(0.01)

defs = phlo.dagster.definitions(project)
instance = dg.DagsterInstance.get()
wait("materialize")
result = dg.materialize([defs.get_assets_def(key)], partition_key=partition, instance=instance,
                        resources=defs.resources)
wait("promote")
print(phlo.dagster.promote(instance, result.run_id).status, result.run_id)
"""


@pytest.mark.parametrize("key,table", [("dlt_events", "raw.events"), ("dlt_clicks", "raw.clicks")])
def test_four_partitions_at_once_all_publish(
    project: Path, instance: dg.DagsterInstance, tmp_path: Path, key: str, table: str
) -> None:
    """Four processes on one DAGSTER_HOME each materialize a different partition, all at
    once, then all promote at once: every branch forked from the same main."""
    script = tmp_path / "run_partition.py"
    script.write_text(CONCURRENT_RUN)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    partitions = ["2025-01-02", "2025-01-03", "2025-01-04", "2025-01-05"]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(project), key, p, str(barrier)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in partitions
    ]
    outputs = [p.communicate(timeout=900) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-3000:]
        assert out.split()[0] == "published", out
    run_ids = {out.split()[1] for out, _ in outputs}
    assert set(published_runs(project)) == run_ids
    assert rows(project, table) == [r for p in partitions for r in events_of(p)]
    assert run_branches(project) == []


def test_concurrent_runs_upserting_the_same_keys_conflict_and_keep_the_branch(
    project: Path, instance: dg.DagsterInstance
) -> None:
    defs = phlo.dagster.definitions(project)
    first = materialize(defs, ["dlt_events"], "2025-01-02", instance)
    second = materialize(defs, ["dlt_events"], "2025-01-02", instance)  # same keys
    assert phlo.dagster.promote(instance, first.run_id).status == "published"
    main_before = lakehouse_of(project).table("raw.events").current_snapshot_id

    outcome = phlo.dagster.promote(instance, second.run_id)
    assert outcome.status == "conflict" and "raw.events" in outcome.reason
    assert lakehouse_of(project).table("raw.events").current_snapshot_id == main_before
    assert run_branches(project) == [f"pipeline-run-{second.run_id}"]
    assert instance.get_run_by_id(second.run_id).tags["phlo/promotion"] == "conflict"  # type: ignore[union-attr]
    # Re-running the partition publishes.
    third = materialize(defs, ["dlt_events"], "2025-01-02", instance)
    assert phlo.dagster.promote(instance, third.run_id).status == "published"
    assert rows(project, "raw.events") == events_of("2025-01-02")
