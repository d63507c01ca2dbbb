"""A project's dbt project as Dagster assets (dagster-dbt): one asset per model, seed and
snapshot, dbt tests as asset checks named ``dbt__<test_type>__<target>``, one ``dbt build`` per
run selection and partition on the run's WAP branch (`phlo.transforms.build`)."""

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, dbt_assets

from phlo.dagster.assets import RESOURCE_KEY, check_result
from phlo.transforms.checks import TestSpec, test_specs
from phlo.transforms.project import ASSET_TYPES, DbtProject, Node

if TYPE_CHECKING:
    from dagster_dbt import DbtProject as DagsterDbtProject

    from phlo.config import ProjectConfig
    from phlo.ingestion.decorator import IngestionDefinition
    from phlo.transforms.build import DbtBuild

__all__ = ["PhloDbtTranslator", "build_dbt_assets", "dbt_partitions"]


class PhloDbtTranslator(DagsterDbtTranslator):
    """Asset keys: a model, seed or snapshot is keyed by its name; a source that is a phlo
    ingestion's table is the ingestion's asset (``dlt_<table>``), so models depend on their
    ingestions; other sources are ``[schema, table]``. Groups follow the medallion rules of
    `Node.group`. Checks get phlo's names and severity policy."""

    def __init__(self, project: DbtProject, ingestion_keys: Mapping[str, str]) -> None:
        super().__init__(DagsterDbtTranslatorSettings(enable_asset_checks=True))
        self._project = project
        self._ingestion_keys = dict(ingestion_keys)
        self._specs = test_specs(project)

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            schema = str(dbt_resource_props["schema"])
            table = str(dbt_resource_props.get("identifier") or dbt_resource_props["name"])
            ingestion = self._ingestion_keys.get(f"{schema}.{table}")
            return dg.AssetKey(ingestion) if ingestion else dg.AssetKey([schema, table])
        return dg.AssetKey(str(dbt_resource_props["name"]))

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] in ASSET_TYPES:
            return Node(dbt_resource_props).group
        return None

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        metadata = dict(super().get_metadata(dbt_resource_props))
        if dbt_resource_props["resource_type"] in ASSET_TYPES:
            node = Node(dbt_resource_props)
            if node.write_mode != "none":
                metadata["dagster/table_name"] = node.table
            metadata["phlo/materialized"] = node.materialized
        return metadata

    def get_asset_check_spec(
        self,
        asset_spec: dg.AssetSpec,
        manifest: Mapping[str, Any],
        unique_id: str,
        project: "DagsterDbtProject | None",
    ) -> dg.AssetCheckSpec | None:
        spec = self._specs.get(unique_id)
        if spec is None or self.get_asset_key(manifest["nodes"][spec.target]) != asset_spec.key:
            return None
        test = manifest["nodes"][unique_id]
        return dg.AssetCheckSpec(
            spec.name,
            asset=asset_spec.key,
            blocking=spec.blocking,
            description=f"dbt test {test['name']} ({spec.severity})",
            metadata={"dbt_unique_id": unique_id},
        )

    def specs(self) -> Mapping[str, TestSpec]:
        return self._specs


def dbt_partitions(project: "ProjectConfig") -> dg.DailyPartitionsDefinition:
    """The project's daily partitions: the same as a daily ingestion's, so ingestions and
    models run together."""
    return dg.DailyPartitionsDefinition(
        start_date=project.partitions_start.isoformat(), timezone=project.timezone
    )


def build_dbt_assets(
    dbt: DbtProject,
    project: "ProjectConfig",
    ingestions: Sequence["IngestionDefinition"],
) -> dg.AssetsDefinition:
    """The ``@dbt_assets`` of the project's dbt project."""
    ingestion_keys = {d.table_identifier(project.namespace): d.asset_key for d in ingestions}
    translator = PhloDbtTranslator(dbt, ingestion_keys)
    by_key = {
        translator.get_asset_key(node.props): node.unique_id for node in dbt.nodes()
    }

    @dbt_assets(
        manifest=dict(dbt.manifest),
        dagster_dbt_translator=translator,
        partitions_def=dbt_partitions(project),
        name=f"dbt_{dbt.name}",
        required_resource_keys={RESOURCE_KEY},
    )
    # Dagster reads this annotation at definition time: no `from __future__ import annotations`.
    def models(context: dg.AssetExecutionContext) -> Iterator[Any]:
        yield from run_build(context, dbt, translator, by_key, ingestions)

    return models


def run_build(
    context: dg.AssetExecutionContext,
    dbt: DbtProject,
    translator: PhloDbtTranslator,
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
    everything = len(selected) == len(by_key)
    result = build(
        dbt,
        resource.open(),
        ref,
        run_id=context.run.run_id,
        select=None if everything else selected,
        partition_date=context.partition_key if context.has_partition_key else None,
    )
    yield from _events(context, translator, by_key, result)
    if result.errors and result.workdir is not None:
        result.errors[0].add_note(f"The build's DuckDB file and dbt logs are in {result.workdir}.")
    result.raise_for_errors()


def _events(
    context: dg.AssetExecutionContext,
    translator: PhloDbtTranslator,
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
        key = keys.get(specs[test_id].target)
        if key is not None and dg.AssetCheckKey(key, check.name) in selected_checks:
            yield check_result(key, check)
