"""The WAP sensors: create a run's branch when it starts, publish it when it succeeded (and its
marts to PostgreSQL after the merge; retried until they are), and remove branches of finished
runs after the retention."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from phlo import wap
from phlo.dagster import tags
from phlo.dagster.promotion import promote
from phlo.dagster.resource import PhloResource, open_run_ref

if TYPE_CHECKING:
    from phlo.ingestion.decorator import IngestionDefinition

__all__ = ["build_sensors", "is_removable"]

#: How often the cleanup sensor looks for expired branches.
CLEANUP_INTERVAL_SECONDS = 600
#: How often runs merged but not yet published to PostgreSQL are published again.
PUBLICATION_RETRY_SECONDS = 60


def build_sensors(
    resource: PhloResource,
    ingestions: Sequence[IngestionDefinition],
    job_names: set[str],
    retention: dt.timedelta,
) -> list[dg.SensorDefinition]:
    """`branch_creation_sensor`, `auto_promotion_sensor`, `publication_retry_sensor`,
    `branch_cleanup_sensor` (all running by default: WAP depends on them when the daemon
    launches runs)."""
    by_key = {dg.AssetKey(d.asset_key): d for d in ingestions}

    def run_ingestions(run: dg.DagsterRun) -> list[IngestionDefinition]:
        """The phlo ingestions a run materializes (all of them for a whole-job run of one
        of phlo's jobs or of the implicit asset job)."""
        if run.asset_selection is not None:
            return [by_key[k] for k in run.asset_selection if k in by_key]
        if run.job_name in job_names:
            return [d for d in ingestions if run.job_name == f"{d.asset_key}_job"]
        return list(ingestions) if run.job_name == "__ASSET_JOB" else []

    @dg.run_status_sensor(
        name="branch_creation_sensor",
        run_status=dg.DagsterRunStatus.STARTED,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Creates the WAP branch pipeline-run-{run_id} of runs of phlo assets",
    )
    def branch_creation_sensor(context: dg.RunStatusSensorContext) -> dg.SkipReason | None:
        run = context.dagster_run
        current = context.instance.get_run_by_id(run.run_id) or run
        if not resource.wap:
            return dg.SkipReason("WAP is off in phlo.yaml")
        if current.is_finished or tags.PROMOTION in current.tags:
            # Seen late: creating the branch now would leave a branch nothing publishes.
            return dg.SkipReason(f"run {run.run_id} already finished")
        ingestions_of_run = run_ingestions(current)
        if not ingestions_of_run:
            return dg.SkipReason(f"run {run.run_id} materializes no phlo ingestion")
        open_run_ref(resource, context.instance, run.run_id, ingestions)
        return None

    @dg.run_status_sensor(
        name="auto_promotion_sensor",
        run_status=dg.DagsterRunStatus.SUCCESS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Publishes a succeeded run's WAP branch into the target (one merge)",
    )
    def auto_promotion_sensor(context: dg.RunStatusSensorContext) -> dg.SkipReason | None:
        outcome = promote(context.instance, context.dagster_run.run_id)
        context.log.info(f"run {outcome.run_id}: {outcome.status} {outcome.reason}".strip())
        return None

    @dg.sensor(
        name="publication_retry_sensor",
        minimum_interval_seconds=PUBLICATION_RETRY_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Publishes to PostgreSQL the marts of promoted runs whose publish failed "
        "or was interrupted",
    )
    def publication_retry_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        waiting = context.instance.get_runs(
            filters=dg.RunsFilter(
                tags={tags.PUBLICATION: ["pending", "failed"]},
                statuses=[dg.DagsterRunStatus.SUCCESS],
            )
        )
        done = []
        for run in waiting:
            try:
                outcome = promote(context.instance, run.run_id)
            except Exception as exc:  # one run's failure must not starve the others
                context.log.error(f"run {run.run_id}: publishing failed again: {exc}")
                done.append(f"{run.run_id}: error")
                continue
            context.log.info(f"run {outcome.run_id}: {outcome.status} {outcome.reason}".strip())
            done.append(f"{outcome.run_id}: {outcome.status}")
        return dg.SkipReason(f"retried {len(done)} runs: {', '.join(done) or '-'}")

    @dg.sensor(
        name="branch_cleanup_sensor",
        minimum_interval_seconds=CLEANUP_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Removes WAP branches of finished runs older than {retention}",
    )
    def branch_cleanup_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        deleted = wap.cleanup(
            resource.open(),
            retention,
            removable=lambda run_id: is_removable(context.instance, run_id),
        )
        return dg.SkipReason(f"removed {len(deleted)} branches: {', '.join(deleted) or '-'}")

    return [
        branch_creation_sensor,
        auto_promotion_sensor,
        publication_retry_sensor,
        branch_cleanup_sensor,
    ]


def is_removable(instance: dg.DagsterInstance, run_id: str) -> bool:
    """A run's branch may go once the run is finished (or unknown to the instance: a
    ``.run()`` outside Dagster, or a deleted run), unless the run succeeded and was not
    promoted yet: that branch is waiting to be published."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        return True
    if not run.is_finished:
        return False
    waiting = run.status == dg.DagsterRunStatus.SUCCESS and tags.PROMOTION not in run.tags
    return not waiting
