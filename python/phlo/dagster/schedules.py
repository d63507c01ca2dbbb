"""A job and a schedule per `@phlo_ingestion` with a ``cron``: each tick requests the
partition the tick should load."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from phlo.dagster import tags
from phlo.dagster.assets import is_intraday, partitions_for

if TYPE_CHECKING:
    from phlo.config import ProjectConfig
    from phlo.ingestion.decorator import IngestionDefinition

__all__ = ["build_job", "build_schedule", "partition_for_tick"]


def build_job(definition: IngestionDefinition) -> dg.UnresolvedAssetJobDefinition:
    """The job that materializes the ingestion's asset, with the max runtime as a run tag
    (enforced by Dagster's run monitoring daemon where enabled, and by phlo's runner)."""
    return dg.define_asset_job(
        name=f"{definition.asset_key}_job",
        selection=[definition.asset_key],
        run_tags={tags.MAX_RUNTIME: str(int(definition.max_runtime_seconds))},
    )


def partition_for_tick(
    partitions: dg.DailyPartitionsDefinition, cron: str, tick: dt.datetime
) -> str | None:
    """The day a tick loads: the tick's own day for an intra-day cron (partitions end a day
    later), else the last complete day before the tick. None before the first partition."""
    day_of = tick if is_intraday(cron) else tick - dt.timedelta(days=1)
    if day_of.timestamp() < partitions.start_timestamp:
        return None
    return partitions.get_partition_key_for_timestamp(day_of.timestamp())


def build_schedule(
    definition: IngestionDefinition,
    job: dg.UnresolvedAssetJobDefinition,
    project: ProjectConfig,
    ingestions: Sequence[IngestionDefinition],
) -> dg.ScheduleDefinition:
    assert definition.cron is not None
    cron = definition.cron
    partitions = partitions_for(definition, project, ingestions)
    run_tags = {tags.MAX_RUNTIME: str(int(definition.max_runtime_seconds))}

    @dg.schedule(
        name=f"{definition.asset_key}_schedule",
        cron_schedule=cron,
        job=job,
        execution_timezone=project.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING
        if project.schedule_status == "running"
        else dg.DefaultScheduleStatus.STOPPED,
        description=f"Loads {definition.table_identifier(project.namespace)} on {cron!r}",
    )
    def schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        tick = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
        key = partition_for_tick(partitions, cron, tick)
        if key is None:
            return dg.SkipReason(f"{tick.isoformat()} is before the first partition")
        return dg.RunRequest(partition_key=key, tags=run_tags)

    return schedule
