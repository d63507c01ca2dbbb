"""@phlo_quality in Dagster: asset checks on the ingestion asset, computed on the run's WAP
branch over the run's partition; a failing blocking check keeps the run unpublished."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

import phlo
import phlo.dagster
from dagster_support import instance, lakehouse_of, project, published_runs, run_branches

__all__ = ["instance", "project"]  # fixtures, used by name below

QUALITY = """
from phlo import phlo_quality
from phlo.quality import NullCheck, RangeCheck, UniqueCheck

@phlo_quality(table="raw.events", checks=[
    NullCheck(columns=["id", "value"]),
    UniqueCheck(columns=["id"]),
    RangeCheck(column="value", min_value=0, max_value={max_value}, severity="{severity}"),
])
def events_quality():
    '''The events are complete, unique and in range.'''
"""


def with_quality(project: Path, max_value: float, severity: str = "error") -> dg.Definitions:
    folder = project / "workflows" / "quality"
    folder.mkdir(exist_ok=True)
    (folder / "events.py").write_text(QUALITY.format(max_value=max_value, severity=severity))
    return phlo.dagster.definitions(project)


def run(defs: dg.Definitions, partition: str, instance: dg.DagsterInstance):
    assets = [defs.get_assets_def("dlt_events"), *defs.asset_checks]
    return dg.materialize(
        assets,
        partition_key=partition,
        instance=instance,
        resources=defs.resources,
        raise_on_error=False,
    )


def evaluations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dg.AssetCheckEvaluation]:
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    found = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        found[evaluation.check_name] = evaluation
    return found


def test_quality_checks_are_declared_on_the_ingestion_asset(project):
    defs = with_quality(project, max_value=100, severity="warn")
    specs = {spec.name: spec for checks in defs.asset_checks for spec in checks.check_specs}
    assert len(specs) == 3 and {"unique_check_id", "range_check_value"} < set(specs)
    for spec in specs.values():
        assert spec.asset_key == dg.AssetKey("dlt_events")
    blocking = {name: spec.blocking for name, spec in specs.items()}
    # error-severity checks of a blocking decorator block; the warn one does not.
    assert sorted(blocking.values()) == [False, True, True]
    dg.Definitions.validate_loadable(defs)


def test_passing_checks_run_on_the_partition_and_the_run_publishes(project, instance):
    defs = with_quality(project, max_value=100)
    run(defs, "2025-01-02", instance)  # an earlier day: the checks must not count its rows
    assert phlo.dagster.promote(instance, instance.get_runs()[0].run_id).status == "published"
    result = run(defs, "2025-01-03", instance)
    assert result.success
    found = evaluations(instance, result.run_id)
    assert len(found) == 4 and all(e.passed for e in found.values())  # with pandera_contract
    for evaluation in found.values():
        metadata = {k: v.value for k, v in evaluation.metadata.items()}
        assert metadata["total_count"] == 5  # the run's partition only
        assert metadata["partition_key"] == "2025-01-03"
        assert {"source", "failed_count", "query_or_sql", "sample", "repro_sql"} <= set(metadata)
    assert phlo.dagster.promote(instance, result.run_id).status == "published"
    assert result.run_id in published_runs(project)
    assert lakehouse_of(project).table("raw.events").to_arrow().num_rows == 10


def test_a_failing_blocking_check_keeps_the_run_unpublished(project, instance):
    defs = with_quality(project, max_value=2)  # values 0..4: two rows out of range
    result = run(defs, "2025-01-02", instance)
    found = evaluations(instance, result.run_id)
    failed = [e for e in found.values() if not e.passed]
    assert len(failed) == 1 and failed[0].blocking
    assert failed[0].metadata["failed_count"].value == 2
    promotion = phlo.dagster.promote(instance, result.run_id)
    assert promotion.status == "blocked" and "range" in promotion.reason
    lh = lakehouse_of(project)
    assert lh.table("raw.events").current_snapshot_id is None  # main untouched
    assert run_branches(project) == [f"pipeline-run-{result.run_id}"]
    # The rows are on the kept branch, for investigation.
    assert lh.table("raw.events", run_branches(project)[0]).to_arrow().num_rows == 5


def test_a_failing_warn_check_reports_and_publishes(project, instance):
    defs = with_quality(project, max_value=2, severity="warn")
    result = run(defs, "2025-01-02", instance)
    found = evaluations(instance, result.run_id)
    warned = [e for e in found.values() if not e.passed]
    assert len(warned) == 1 and warned[0].severity == dg.AssetCheckSeverity.WARN
    assert phlo.dagster.promote(instance, result.run_id).status == "published"


@pytest.mark.parametrize("asset_key", ["custom/events"])
def test_an_explicit_asset_key_is_used(project, asset_key):
    folder = project / "workflows" / "quality"
    folder.mkdir()
    (folder / "other.py").write_text(
        "from phlo import phlo_quality\nfrom phlo.quality import CountCheck\n"
        f"@phlo_quality(table='raw.events', checks=[CountCheck(min_rows=1)], asset_key='{asset_key}')\n"
        "def counted():\n    pass\n"
    )
    defs = phlo.dagster.definitions(project)
    keys = {spec.asset_key for checks in defs.asset_checks for spec in checks.check_specs}
    assert keys == {dg.AssetKey.from_user_string(asset_key)}
