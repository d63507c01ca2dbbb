"""Write-Audit-Publish outside Dagster: `.run()` runs the project's @phlo_quality checks of the
ingested table on the run's branch before publishing; a failing blocking check (or one that
cannot run) keeps the run unpublished, as Dagster's promotion does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import phlo
import phlo.discovery
from phlo import errors
from phlo.discovery import discover

PROJECT = Path(__file__).parent / "projects" / "events"
DAY = "2025-01-02"  # 5 events, values 0.0 to 4.0

QUALITY = """
from phlo import phlo_quality
from phlo.quality import NullCheck, RangeCheck

@phlo_quality(table="raw.events", checks=[
    NullCheck(columns=["id", "value"]),
    RangeCheck(column="value", min_value=0, max_value={max_value}, severity="{severity}"),
]{extra})
def events_quality():
    '''The events are complete and in range.'''
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the events project, as the working directory."""
    folder = tmp_path / "project"
    shutil.copytree(PROJECT, folder, ignore=shutil.ignore_patterns("__pycache__", ".phlo"))
    monkeypatch.delenv("PHLO_LAKEHOUSE", raising=False)
    monkeypatch.chdir(folder)
    return folder


def with_quality(project: Path, max_value: float, severity: str = "error", extra: str = ""):
    """Adds a quality module and returns the project's events ingestion."""
    folder = project / "workflows" / "quality"
    folder.mkdir(exist_ok=True)
    text = QUALITY.format(max_value=max_value, severity=severity, extra=extra)
    (folder / "events.py").write_text(text)
    (ingestion,) = [d for d in discover(project).ingestions if d.table_name == "events"]
    return ingestion


def events_on(project: Path, ref: str = "main") -> int:
    lh = phlo.Lakehouse.open(project / ".phlo")
    try:
        return lh.table("raw.events", ref).scan().to_arrow().num_rows
    except errors.NoSuchTableError:
        return 0


def test_a_failing_blocking_check_keeps_the_run_unpublished(project):
    ingestion = with_quality(project, max_value=3)
    with pytest.raises(errors.QualityCheckError) as info:
        ingestion.run(DAY)
    error = info.value
    assert isinstance(error, errors.ValidationError) and error.code == "quality_check"
    result = error.result
    assert result.status == "written" and result.branch != "main"
    for named in ("raw.events", DAY, result.run_id, result.branch, "range_check_value", "re-run"):
        assert named in str(error), named
    assert error.table == "raw.events"
    assert {r.name: r.passed for r in error.results} == {
        "null_check_id_value": True,
        "range_check_value": False,
    }
    assert result.quality == error.results
    assert events_on(project) == 0  # main untouched
    assert events_on(project, result.branch) == 5  # the branch is kept and readable


def test_passing_checks_publish_and_are_reported(project):
    ingestion = with_quality(project, max_value=10)
    result = ingestion.run(DAY)
    assert result.status == "published"
    assert [(r.name, r.passed, r.partition_key) for r in result.quality] == [
        ("null_check_id_value", True, DAY),
        ("range_check_value", True, DAY),
    ]
    assert result.quality[1].total_count == 5  # only the run's partition was checked
    assert "audit" in result.timings
    assert events_on(project) == 5


def test_a_failing_warn_check_reports_and_publishes(project):
    ingestion = with_quality(project, max_value=3, severity="warn")
    result = ingestion.run(DAY)
    assert result.status == "published" and events_on(project) == 5
    # Jupyter's view of the run shows the audit beside the contract.
    view = result._repr_html_()
    assert "range_check_value" in view and "failed (warn)" in view
    (failed,) = [r for r in result.quality if not r.passed]
    assert (
        failed.name == "range_check_value"
        and failed.severity == "warn"
        and failed.failed_count == 1
    )


def test_a_non_blocking_definition_reports_and_publishes(project):
    ingestion = with_quality(project, max_value=3, extra=", blocking=False")
    result = ingestion.run(DAY)
    assert result.status == "published" and events_on(project) == 5
    assert [r.name for r in result.quality if not r.passed] == ["range_check_value"]


def test_a_check_that_cannot_run_keeps_the_run_unpublished(project):
    ingestion = with_quality(project, max_value=10, extra=', partition_column="no_such_column"')
    with pytest.raises(errors.QualityCheckError) as info:
        ingestion.run(DAY)
    assert "could not run" in str(info.value) and "no_such_column" in str(info.value)
    assert isinstance(info.value.__cause__, errors.InputError)
    assert events_on(project) == 0
    assert events_on(project, info.value.result.branch) == 5


def test_without_wap_the_checks_run_after_the_commit_and_warn(project):
    (project / "phlo.yaml").write_text(
        (project / "phlo.yaml").read_text().replace("enabled: true", "enabled: false")
    )
    ingestion = with_quality(project, max_value=3)
    with pytest.warns(UserWarning, match="range_check_value"):
        result = ingestion.run(DAY)
    assert result.status == "published" and result.branch == "main"
    assert [r.name for r in result.quality if not r.passed] == ["range_check_value"]
    assert events_on(project) == 5


def test_a_project_whose_workflows_do_not_import_writes_nothing(project):
    ingestion = with_quality(project, max_value=10)
    (project / "workflows" / "quality" / "broken.py").write_text("import no_such_module\n")
    with pytest.raises(errors.ConfigError, match="broken"):
        ingestion.run(DAY)
    lh = phlo.Lakehouse.open(project / ".phlo")
    with pytest.raises(errors.NoSuchTableError):
        lh.table("raw.events")


def test_runs_discover_the_checks_once_until_a_workflow_file_changes(project, monkeypatch):
    """A loop over partitions imports the project's workflows once; a changed workflow file is
    found again (here: a check that now fails)."""
    ingestion = with_quality(project, max_value=10)
    discoveries = []
    real = phlo.discovery.discover

    def counted(root: Path) -> phlo.discovery.Workflows:
        discoveries.append(root)
        return real(root)

    monkeypatch.setattr(phlo.discovery, "discover", counted)
    assert ingestion.run(DAY).status == "published"
    assert ingestion.run(DAY).status == "published"
    assert len(discoveries) == 1
    with_quality(project, max_value=3)
    with pytest.raises(errors.QualityCheckError, match="range_check_value"):
        ingestion.run(DAY)
    assert len(discoveries) == 2
