"""A project's dbt project as Dagster assets (dagster-dbt): one asset per model, seed and
snapshot, dbt tests as asset checks named ``dbt__<test_type>__<target>``, one ``dbt build`` per
run selection and partition on the run's WAP branch (`phlo.transforms.build`)."""

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from phlo.dagster.assets import RESOURCE_KEY, check_result, project_partitions

if TYPE_CHECKING:
    from phlo.config import ProjectConfig
    from phlo.dagster.dbt_translator import PhloDbtTranslator
    from phlo.ingestion.decorator import IngestionDefinition
    from phlo.transforms.build import DbtBuild
    from phlo.transforms.project import DbtProject

__all__ = ["build_dbt_assets"]


def build_dbt_assets(
    dbt: "DbtProject",
    project: "ProjectConfig",
    ingestions: Sequence["IngestionDefinition"],
) -> dg.AssetsDefinition:
    """The ``@dbt_assets`` of the project's dbt project (dagster-dbt is imported only for
    projects that have one)."""
    from dagster_dbt import dbt_assets

    from phlo.dagster.dbt_translator import PhloDbtTranslator

    ingestion_keys = {d.table_identifier(project.namespace): d.asset_key for d in ingestions}
    translator = PhloDbtTranslator(dbt, ingestion_keys)
    by_key = {translator.get_asset_key(node.props): node.unique_id for node in dbt.nodes()}

    @dbt_assets(
        manifest=dict(dbt.manifest),
        dagster_dbt_translator=translator,
        partitions_def=project_partitions(project, ingestions),
        name=f"dbt_{dbt.name}",
        required_resource_keys={RESOURCE_KEY},
    )
    # Dagster reads this annotation at definition time: no `from __future__ import annotations`.
    def models(context: dg.AssetExecutionContext) -> Iterator[Any]:
        yield from run_build(context, dbt, translator, by_key, ingestions)

    # dagster-dbt gives daily-partitioned models the backfill policy single_run; phlo's
    # ingestions (and your own assets) have none, and Dagster warns about every run mixing
    # policies. Without one, a backfill is a run per partition: one dbt build per partition.
    attributes = {**models.get_attributes_dict(), "backfill_policy": None}
    attributes.pop("execution_type")  # materialization, the default (a beta parameter)
    return dg.AssetsDefinition(**attributes)


def run_build(
    context: dg.AssetExecutionContext,
    dbt: "DbtProject",
    translator: "PhloDbtTranslator",
    by_key: Mapping[dg.AssetKey, str],
    ingestions: Sequence["IngestionDefinition"],
) -> Iterator[Any]:
    """The step: one ``dbt build`` of the selected models on the run's ref, their writes as
    materializations, their tests as check results; a failed model raises its typed error
    (after the results of what did build)."""
    from phlo.transforms.build import build

    resource = getattr(context.resources, RESOURCE_KEY)
    ref = resource.run_ref(context, ingestions)
    selected = [by_key[k] for k in context.selected_asset_keys if k in by_key]
    if not selected:  # only checks were selected: build what they check
        checked = {k.asset_key for k in context.selected_asset_check_keys}
        selected = [by_key[k] for k in checked if k in by_key]
    everything = len(selected) == len(by_key)
    result = build(
        dbt,
        resource.open(),
        ref,
        run_id=context.run.run_id,
        select=None if everything else selected,
        partition_date=context.partition_key if context.has_partition_key else None,
        located_by=Path(resource.project) if resource.project else None,
    )
    yield from _events(context, translator, by_key, result)
    if result.errors and result.workdir is not None:
        result.errors[0].add_note(f"The build's DuckDB file and dbt logs are in {result.workdir}.")
    result.raise_for_errors()


def _events(
    context: dg.AssetExecutionContext,
    translator: "PhloDbtTranslator",
    by_key: Mapping[dg.AssetKey, str],
    result: "DbtBuild",
) -> Iterator[Any]:
    keys = {uid: key for key, uid in by_key.items()}
    selected_checks = context.selected_asset_check_keys
    specs = translator.specs()
    for uid, outcome in result.nodes.items():
        key = keys.get(uid)
        if key is None or key not in context.selected_asset_keys or outcome.status != "success":
            continue
        metadata: dict[str, Any] = {"phlo/branch": result.ref, "dbt/status": outcome.message}
        if outcome.write is not None:
            metadata.update(
                {
                    "dagster/row_count": outcome.write.rows,
                    "dagster/table_name": outcome.write.table,
                    "phlo/write": outcome.write.outcome,
                    "phlo/snapshot_id": str(outcome.write.snapshot_id or ""),
                }
            )
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
    for test_id, check in result.checks.items():
        # A test added since the definitions were loaded has no check (nor, maybe, asset).
        spec = specs.get(test_id)
        key = keys.get(spec.target) if spec is not None else None
        if key is not None and dg.AssetCheckKey(key, check.name) in selected_checks:
            yield check_result(key, check)
