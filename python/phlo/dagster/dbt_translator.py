"""How dbt nodes appear in Dagster: asset keys, groups, metadata and phlo's asset checks."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from phlo.transforms.checks import TestSpec, test_specs
from phlo.transforms.project import ASSET_TYPES, DbtProject, Node

if TYPE_CHECKING:
    from dagster_dbt import DbtProject as DagsterDbtProject

__all__ = ["PhloDbtTranslator"]


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
