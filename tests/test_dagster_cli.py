"""The project from Dagster's command line: ``dagster definitions validate`` and ``dagster asset
materialize`` in a subprocess on the project folder, then promotion through an instance on the
same DAGSTER_HOME (no daemon runs here to do it)."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
from tests.dagster_support import instance, project, published_runs, rows, run_branches
from tests.test_dagster import events_of

import phlo.dagster

__all__ = ["instance", "project"]  # fixtures


def dagster_cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dagster", *args, "-d", str(project), "-m", "definitions"],
        cwd=project,
        env={**os.environ, "DAGSTER_DISABLE_TELEMETRY": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_definitions_validate_from_the_command_line(
    project: Path, instance: dg.DagsterInstance
) -> None:
    done = dagster_cli(project, "definitions", "validate")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Validation successful" in done.stdout + done.stderr


def test_a_broken_project_fails_validation_naming_the_file(
    project: Path, instance: dg.DagsterInstance
) -> None:
    (project / "workflows" / "broken.py").write_text("raise RuntimeError('half-written module')\n")
    done = dagster_cli(project, "definitions", "validate")
    assert done.returncode != 0
    output = done.stdout + done.stderr  # Dagster logs the failure to stdout
    assert (
        f"ConfigError: {project / 'workflows' / 'broken.py'}: importing workflows.broken" in output
    )
    assert "RuntimeError: half-written module" in output


def test_materialize_a_partition_from_the_command_line_then_promote(
    project: Path, instance: dg.DagsterInstance
) -> None:
    done = dagster_cli(
        project, "asset", "materialize", "--select", "dlt_events", "--partition", "2025-01-02"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["dagster/partition"] == "2025-01-02"
    assert run_branches(project) == [f"pipeline-run-{run.run_id}"]
    assert rows(project, "raw.events") == []  # written to the run's branch only

    assert phlo.dagster.promote(instance, run.run_id).status == "published"
    assert rows(project, "raw.events") == events_of("2025-01-02")
    assert published_runs(project) == [run.run_id]
