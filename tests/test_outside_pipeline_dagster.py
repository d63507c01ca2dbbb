"""Dagster runs from outside. Quality gates: the run the ingestion's own job (what its schedule
launches) makes, a blocking `@phlo_quality` check that fails, one that raises instead of
judging, a failed contract — each keeps `main` untouched and the promotion says why, naming the
check. And two runs appending the same partition before either is promoted: it lands once."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg

import phlo
import phlo.dagster
from dagster_support import instance, lakehouse_of, materialize, project, rows, run_branches
from phlo import wap
from phlo.dagster.sensors import is_removable

__all__ = ["instance", "project"]  # fixtures, used by name below

RANGE = """
from phlo import phlo_quality
from phlo.quality import RangeCheck

@phlo_quality(table="raw.events", checks=[RangeCheck(column="value", min_value=0, max_value=2)])
def events_quality():
    '''Values stay small.'''
"""

BROKEN = """
from phlo import phlo_quality
from phlo.quality import CountCheck, CustomSQLCheck

@phlo_quality(table="raw.events", checks=[
    CountCheck(min_rows=1),
    CustomSQLCheck(name_="broken_sql", sql="no_such_function(value) > 0"),
])
def events_quality():
    '''A check whose SQL cannot run.'''
"""

MISSING_TABLE = """
from phlo import phlo_quality
from phlo.quality import CountCheck

@phlo_quality(table="raw.evnets", asset_key="dlt_events", checks=[CountCheck(min_rows=1)])
def events_quality():
    '''A check of a table that does not exist (a typo).'''
"""


def with_quality(project: Path, source: str) -> dg.Definitions:
    folder = project / "workflows" / "quality"
    folder.mkdir(exist_ok=True)
    (folder / "events.py").write_text(source)
    return phlo.dagster.definitions(project)


def run_job(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """The run the ingestion's schedule launches: its job, for one partition."""
    job = defs.resolve_job_def("dlt_events_job")
    return job.execute_in_process(
        partition_key="2025-01-02", instance=instance, raise_on_error=False
    )


def assert_unpublished(project: Path, instance: dg.DagsterInstance, run_id: str) -> str:
    promotion = phlo.dagster.promote(instance, run_id)
    assert promotion.status == "blocked", promotion
    assert lakehouse_of(project).table("raw.events").current_snapshot_id is None
    assert run_branches(project) == [f"pipeline-run-{run_id}"]
    return promotion.reason


def test_the_ingestion_job_runs_the_quality_checks_and_a_failure_blocks(project, instance):
    defs = with_quality(project, RANGE)
    result = run_job(defs, instance)
    reason = assert_unpublished(project, instance, result.run_id)
    assert "dlt_events:range_check_value" in reason


def test_a_check_whose_sql_cannot_run_fails_naming_itself(project, instance):
    defs = with_quality(project, BROKEN)
    result = run_job(defs, instance)
    reason = assert_unpublished(project, instance, result.run_id)
    assert "broken_sql" in reason, reason


def test_a_check_that_raises_blocks_and_the_reason_names_it(project, instance):
    defs = with_quality(project, MISSING_TABLE)
    result = run_job(defs, instance)
    assert not result.success
    reason = assert_unpublished(project, instance, result.run_id)
    assert "quality_events_quality" in reason and "raw.evnets" in reason, reason


def test_a_failed_contract_blocks_and_the_reason_says_how_to_fix(project, instance):
    defs = phlo.dagster.definitions(project)
    job = defs.resolve_job_def("dlt_events_job")
    result = job.execute_in_process(
        partition_key="2025-01-13", instance=instance, raise_on_error=False
    )  # the project's bad day: one negative value
    reason = assert_unpublished(project, instance, result.run_id)
    assert "dlt_events:pandera_contract" in reason
    assert "raw.events partition 2025-01-13" in reason and "staged input is kept" in reason, reason


def test_two_runs_appending_one_partition_publish_it_once(project, instance):
    """dlt_clicks appends; both runs fork from the same main before either publishes."""
    defs = phlo.dagster.definitions(project)
    first = materialize(defs, ["dlt_clicks"], "2025-01-02", instance)
    second = materialize(defs, ["dlt_clicks"], "2025-01-02", instance)
    assert phlo.dagster.promote(instance, first.run_id).status == "published"
    outcome = phlo.dagster.promote(instance, second.run_id)
    assert outcome.status == "conflict" and "raw.clicks" in outcome.reason, outcome
    assert len(rows(project, "raw.clicks")) == 5  # not 10
    assert run_branches(project) == [f"pipeline-run-{second.run_id}"]
    # Re-running the partition publishes it, once.
    third = materialize(defs, ["dlt_clicks"], "2025-01-02", instance)
    assert phlo.dagster.promote(instance, third.run_id).status == "published"
    assert len(rows(project, "raw.clicks")) == 5


# A Dagster run whose process is killed just after its ingestion committed to the run's branch.
KILLED_RUN = """
import os, sys
import dagster as dg
import phlo.dagster
from phlo.ingestion import runner

project, held = sys.argv[1:3]
write = runner._write

def armed(*args, **kwargs):
    os.environ["PHLO_FAILPOINT_DIR"] = held
    os.environ["PHLO_FAILPOINTS"] = "commit.after-swap:pause"
    return write(*args, **kwargs)

runner._write = armed
defs = phlo.dagster.definitions(project)
dg.materialize([defs.get_assets_def("dlt_events")], partition_key="2025-01-02",
               instance=dg.DagsterInstance.get(), resources=defs.resources)
"""


def test_a_killed_run_stays_unpublished_and_is_cleaned_up_once_marked_failed(
    project: Path, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    held = tmp_path / "held"
    held.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHLO_FAILPOINT")}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(project), str(held)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        while not (held / "commit.after-swap.paused").exists():
            with contextlib.suppress(subprocess.TimeoutExpired):
                _, err = child.communicate(timeout=0.05)
                raise AssertionError(f"the run ended before its commit: {err[-3000:]}")
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.communicate()
    (run,) = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.STARTED  # nothing told Dagster it died
    assert phlo.dagster.promote(instance, run.run_id).status == "blocked"
    lh = lakehouse_of(project)
    assert lh.table("raw.events").current_snapshot_id is None  # main untouched
    branch = f"pipeline-run-{run.run_id}"
    assert lh.table("raw.events", branch).to_arrow().num_rows == 5  # the branch commit landed

    def cleanup() -> list[str]:
        return wap.cleanup(lh, dt.timedelta(0), removable=lambda r: is_removable(instance, r))

    assert cleanup() == []  # a run Dagster believes is running keeps its branch
    instance.report_run_failed(run)  # what Dagster's run monitoring does for a dead run
    assert cleanup() == [branch]
    assert not list((lh.scratch_dir / "staging").iterdir())
    assert lh.table("raw.events").current_snapshot_id is None
    # Re-running the partition publishes it.
    defs = phlo.dagster.definitions(project)
    result = materialize(defs, ["dlt_events"], "2025-01-02", instance)
    assert phlo.dagster.promote(instance, result.run_id).status == "published"
    assert len(rows(project, "raw.events")) == 5
