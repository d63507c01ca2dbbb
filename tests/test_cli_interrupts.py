"""Interrupting `phlo materialize` and `phlo backfill`: what the command says it left behind
must be true with Write-Audit-Publish off too (runs then commit straight to the target), a
parallel backfill stops its workers' runs, and a run whose process was killed does not stay
STARTED. Real processes on a copy of tests/projects/events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from tests.dagster_support import lakehouse_of, project
from tests.test_cli_project import CRASHING, PHLO, backfill, clean_env, phlo_cli

__all__ = ["clean_env", "project"]  # fixtures

#: An ingestion that presses Ctrl-C (SIGINT to its process group, as a terminal does) on
#: its first call; named so that it runs after dlt_events in the same run.
PRESSING = """
import os, signal, time
from pathlib import Path

from workflows.schemas.events import UserSchema

from phlo import phlo_ingestion

MARKER = Path(__file__).with_suffix(".pressed")


# Dagster retries the interrupted step after retry_delay_seconds: a minute, so that only
# phlo's interrupt watcher, however late it gets to run on a loaded machine, ends the command.
@phlo_ingestion(table_name="zpressed", unique_key="id", validation_schema=UserSchema,
                group="keys", retry_delay_seconds=60)
def keys_pressed(partition_date: str) -> list[dict[str, object]]:
    if not MARKER.exists():
        MARKER.touch()
        os.killpg(os.getpgid(0), signal.SIGINT)
        time.sleep(5)  # the interrupt lands here
    return [{"id": 1, "name": partition_date}]
"""


def _materialize(project: Path, *select: str) -> subprocess.CompletedProcess[str]:
    args = [f"--select={s}" for s in select]
    return subprocess.run(
        [*PHLO, "--project", str(project), "materialize", *args, "--partition", "2025-01-02"],
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,  # a process group of its own, pytest outside it
    )


def test_with_wap_off_the_interrupt_says_what_was_committed(project: Path) -> None:
    """It said "nothing published" while dlt_events had already committed to main."""
    yaml = project / "phlo.yaml"
    yaml.write_text(yaml.read_text().replace("enabled: true", "enabled: false"))
    (project / "workflows" / "ingestion" / "keys.py").write_text(PRESSING)
    done = _materialize(project, "dlt_events", "dlt_zpressed")
    assert done.returncode == 130, done.stdout + done.stderr
    assert "nothing published" not in done.stderr
    (commit,) = [e for e in lakehouse_of(project).log("main", 50) if e.run_id]
    assert (
        "Write-Audit-Publish is off, so it wrote straight to main: committed raw.events "
        f"(commit {commit.commit_id})" in done.stderr
    ), done.stderr
    assert f"`phlo log --ref main` lists the commits (run id {commit.run_id})" in done.stderr
    assert lakehouse_of(project).table("raw.events").to_arrow().num_rows == 5


def test_with_wap_off_an_interrupt_before_any_commit_says_so(project: Path) -> None:
    yaml = project / "phlo.yaml"
    yaml.write_text(yaml.read_text().replace("enabled: true", "enabled: false"))
    (project / "workflows" / "ingestion" / "keys.py").write_text(PRESSING)
    done = _materialize(project, "dlt_zpressed")
    assert done.returncode == 130, done.stdout + done.stderr
    assert "Write-Audit-Publish is off, but nothing of it was committed to main" in done.stderr


def test_with_wap_the_interrupt_names_the_kept_branch(project: Path) -> None:
    (project / "workflows" / "ingestion" / "keys.py").write_text(PRESSING)
    done = _materialize(project, "dlt_events", "dlt_zpressed")
    assert done.returncode == 130, done.stdout + done.stderr
    runs = json.loads(phlo_cli(project, "status", "--json").stdout)["runs"]
    assert [r["status"] for r in runs] == ["CANCELED"]
    branch = f"pipeline-run-{runs[0]['run_id']}"
    assert f"nothing published (its writes stay on branch {branch})" in done.stderr
    assert "raw.events" not in lakehouse_of(project).tables("raw") or (
        lakehouse_of(project).table("raw.events").to_arrow().num_rows == 0
    )


#: An ingestion that says it started (its marker file), then takes its time.
SLOW = """
import time
from pathlib import Path

from workflows.schemas.events import UserSchema

from phlo import phlo_ingestion

MARKER = Path(__file__).with_suffix(".started")


@phlo_ingestion(table_name="slow", unique_key="id", validation_schema=UserSchema, group="slow",
                retry_delay_seconds=1)
def slow(partition_date: str) -> list[dict[str, object]]:
    with MARKER.open("a") as marker:
        marker.write(partition_date + "\\n")
    time.sleep(120)
    return [{"id": 1, "name": partition_date}]
"""


def _started(project: Path, process: subprocess.Popen[str], count: int = 1) -> list[str]:
    """Waits until `count` slow runs have started (or the process ended: fails)."""
    marker = project / "workflows" / "ingestion" / "slow.started"
    while not marker.exists() or len(marker.read_text().split()) < count:
        assert process.poll() is None, process.communicate()
        time.sleep(0.1)
    return marker.read_text().split()


def _start(project: Path, *args: str) -> subprocess.Popen[str]:
    (project / "workflows" / "ingestion" / "slow.py").write_text(SLOW)
    return subprocess.Popen(
        [*PHLO, "--project", str(project), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _runs(project: Path) -> list[dict[str, object]]:
    return json.loads(phlo_cli(project, "status", "--json").stdout)["runs"]


def test_a_killed_run_is_marked_failed_by_the_next_command(project: Path) -> None:
    """SIGKILL leaves no chance to record anything: the run stayed STARTED forever."""
    process = _start(project, "materialize", "--select", "dlt_slow", "--partition", "2025-01-02")
    _started(project, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    status = phlo_cli(project, "status", "--json")
    (run,) = json.loads(status.stdout)["runs"]
    assert run["status"] == "FAILURE"
    assert f"note: run {run['run_id'][:8]} was left STARTED" in status.stderr
    import dagster as dg

    home = project / ".phlo" / "dagster"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_records_for_run(
            run["run_id"], of_type=dg.DagsterEventType.RUN_FAILURE
        ).records
        (failure,) = [r.event_log_entry.dagster_event for r in records]
    assert f"pid {process.pid}" in failure.message and "killed or crashed" in failure.message
    assert not list((home / ".phlo-cli-runs").iterdir())  # the dead lock is cleared
    assert _runs(project)[0]["status"] == "FAILURE"  # once: nothing more to repair
    assert "dlt_slow" in run["assets"] and run["promotion"] is None


def test_a_running_run_is_left_alone(project: Path) -> None:
    process = _start(project, "materialize", "--select", "dlt_slow", "--partition", "2025-01-02")
    try:
        _started(project, process)
        assert [r["status"] for r in _runs(project)] == ["STARTED"]
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def test_sigterm_cancels_the_run_like_ctrl_c(project: Path) -> None:
    process = _start(project, "materialize", "--select", "dlt_slow", "--partition", "2025-01-02")
    _started(project, process)
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "[interrupted]" in err and "nothing published" in err
    assert [r["status"] for r in _runs(project)] == ["CANCELED"]


@pytest.mark.parametrize("to", ["command", "group"])
def test_ctrl_c_stops_a_parallel_backfill_and_its_workers_runs(project: Path, to: str) -> None:
    """SIGINT to the command only (`kill -INT`; before, the workers were left to finish their
    runs and publish them, and the command waited for them) or to its process group, as a
    terminal's Ctrl-C does."""
    process = _start(
        project,
        "backfill",
        "--start=2025-01-02",
        "--end=2025-01-04",
        "--select=dlt_slow",
        "--parallel=2",
    )
    started = _started(project, process, count=2)
    if to == "group":
        os.killpg(process.pid, signal.SIGINT)
    else:
        process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "[interrupted] interrupted: 0 of 3 runs had finished" in err
    assert "recorded CANCELED: nothing of them is published" in err
    for day in started:  # each worker's own message, passed on
        assert f"of {day} stopped, nothing published (its writes stay on branch" in err
    runs = _runs(project)
    assert sorted(r["partition"] for r in runs) == sorted(started)
    assert [r["status"] for r in runs] == ["CANCELED", "CANCELED"]
    assert "raw.slow" not in lakehouse_of(project).tables("raw") or (
        lakehouse_of(project).table("raw.slow").to_arrow().num_rows == 0
    )
    assert "published" not in [r["promotion"] for r in runs]


def test_the_run_of_a_parallel_worker_that_died_is_marked_failed_at_once(project: Path) -> None:
    """The backfill reported the day failed, but its run stayed STARTED in the Dagster home."""
    (project / "workflows" / "ingestion" / "crash.py").write_text(CRASHING)
    result = backfill(
        project, "2025-01-02", "2025-01-03", "--select", "group:crash", "--parallel", "2"
    )
    assert result.exit_code == 1, result.output
    import dagster as dg

    with dg.DagsterInstance.from_config(str(project / ".phlo" / "dagster")) as instance:
        statuses = {run.tags["dagster/partition"]: run.status.value for run in instance.get_runs()}
    assert statuses == {"2025-01-02": "SUCCESS", "2025-01-03": "FAILURE"}
    assert "was left STARTED by a phlo process that ended mid-run" in result.stderr
