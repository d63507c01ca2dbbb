"""Interrupting `phlo materialize` and `phlo backfill`: what the command says it left behind
must be true with Write-Audit-Publish off too (runs then commit straight to the target), a
parallel backfill stops its workers' runs, and a run whose process was killed does not stay
STARTED. Real processes on a copy of tests/projects/events."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.dagster_support import lakehouse_of, project
from tests.test_cli_project import PHLO, clean_env, phlo_cli

__all__ = ["clean_env", "project"]  # fixtures

#: An ingestion that presses Ctrl-C (SIGINT to its process group, as a terminal does) on
#: its first call; named so that it runs after dlt_events in the same run.
PRESSING = """
import os, signal, time
from pathlib import Path

from workflows.schemas.events import UserSchema

from phlo import phlo_ingestion

MARKER = Path(__file__).with_suffix(".pressed")


@phlo_ingestion(table_name="zpressed", unique_key="id", validation_schema=UserSchema,
                group="keys", retry_delay_seconds=1)
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
