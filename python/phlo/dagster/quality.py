"""`@phlo_quality` as Dagster asset checks: one check per quality check, on the table's asset,
all computed in one pass at the run's ref (its WAP branch), so a failing blocking check keeps
the run unpublished (`phlo.dagster.promotion`) and stops downstream assets."""

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import dagster as dg

from phlo.dagster.assets import RESOURCE_KEY, check_result

if TYPE_CHECKING:
    from phlo.config import ProjectConfig
    from phlo.ingestion.decorator import IngestionDefinition
    from phlo.quality.decorator import QualityDefinition

__all__ = ["build_quality_checks", "checked_asset_key"]

#: The run tag Dagster puts the partition of a partitioned run in.
PARTITION_TAG = "dagster/partition"


def checked_asset_key(
    definition: "QualityDefinition",
    ingestions: Sequence["IngestionDefinition"],
    project: "ProjectConfig",
) -> dg.AssetKey:
    """The asset the checks belong to: `asset_key` when given, else the ingestion asset
    (``dlt_<table>``) of the phlo ingestion writing the table, else the table's name as a
    key path (``raw.events`` → ``["raw", "events"]``)."""
    if definition.asset_key:
        return dg.AssetKey.from_user_string(definition.asset_key)
    for ingestion in ingestions:
        if ingestion.table_identifier(project.namespace) == definition.table:
            return dg.AssetKey(ingestion.asset_key)
    return dg.AssetKey(definition.table.split("."))


def build_quality_checks(
    definition: "QualityDefinition",
    ingestions: Sequence["IngestionDefinition"],
    project: "ProjectConfig",
) -> dg.AssetChecksDefinition:
    """The asset checks of one `@phlo_quality`: a check is blocking when the decorator is and
    its severity is ``error``."""
    key = checked_asset_key(definition, ingestions, project)
    specs = [
        dg.AssetCheckSpec(
            check.name,
            asset=key,
            blocking=definition.blocking and check.severity == "error",
            description=f"{type(check).__name__} ({definition.name})",
        )
        for check in definition.checks
    ]

    @dg.multi_asset_check(
        specs=specs,
        name=f"quality_{definition.name}",
        description=definition.description,
        required_resource_keys={RESOURCE_KEY},
    )
    # Dagster reads this annotation at definition time: no `from __future__ import annotations`.
    def run(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        yield from evaluate(context, definition, key, ingestions)

    return run


def evaluate(
    context: dg.AssetCheckExecutionContext,
    definition: "QualityDefinition",
    key: dg.AssetKey,
    ingestions: Sequence["IngestionDefinition"],
) -> Iterator[dg.AssetCheckResult]:
    """Runs every check of `definition` over the run's partition at the run's ref."""
    from phlo.quality.runner import run_checks

    resource = getattr(context.resources, RESOURCE_KEY)
    ref = resource.run_ref(context, ingestions)
    # An unpartitioned run (the checks launched on their own) checks the whole table.
    partition = context.run.tags.get(PARTITION_TAG) if definition.partition_aware else None
    for result in run_checks(definition, partition, resource.open(), ref):
        yield check_result(key, result)
