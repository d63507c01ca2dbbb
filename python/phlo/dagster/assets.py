"""One Dagster asset per `@phlo_ingestion`: partitioned by day, retried, with the blocking
``pandera_contract`` check, writing to the run's WAP branch."""

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg
import pyarrow as pa

from phlo.errors import SourceError
from phlo.ingestion.contract import CHECK_NAME

if TYPE_CHECKING:
    from phlo.config import ProjectConfig
    from phlo.ingestion.decorator import IngestionDefinition
    from phlo.ingestion.result import IngestionResult
    from phlo.quality.contract import CheckResult

__all__ = ["build_asset", "is_intraday", "partitions_for", "project_partitions"]

RESOURCE_KEY = "phlo"


def is_intraday(cron: str | None) -> bool:
    """True when `cron` may fire more than once a day (its minute or hour field is not a
    single number): such a schedule loads today's partition, so the partitions end a day
    later (``end_offset=1``)."""
    if cron is None:
        return False
    minute, hour = cron.split()[:2]
    return not (minute.isdigit() and hour.isdigit())


def project_partitions(
    project: "ProjectConfig", ingestions: Sequence["IngestionDefinition"]
) -> dg.DailyPartitionsDefinition:
    """The project's daily partitions, shared by its ingestions, dbt models and publishing
    assets so that one run holds them all (and publishes them in one merge). They end today
    when any ingestion's schedule loads today's partition (an intra-day cron), else yesterday."""
    return dg.DailyPartitionsDefinition(
        start_date=project.partitions_start.isoformat(),
        timezone=project.timezone,
        end_offset=1 if any(is_intraday(d.cron) for d in ingestions) else 0,
    )


def partitions_for(
    definition: "IngestionDefinition",
    project: "ProjectConfig",
    ingestions: Sequence["IngestionDefinition"],
) -> dg.DailyPartitionsDefinition:
    """The project's partitions, unless the ingestion starts elsewhere (`partitions_start`):
    then its own, which Dagster runs apart from the project's other assets."""
    start = definition.partitions_start
    if start is None or str(start) == project.partitions_start.isoformat():
        return project_partitions(project, ingestions)
    return dg.DailyPartitionsDefinition(
        start_date=str(start),
        timezone=project.timezone,
        end_offset=1 if is_intraday(definition.cron) else 0,
    )


def build_asset(
    definition: "IngestionDefinition",
    project: "ProjectConfig",
    project_ingestions: Sequence["IngestionDefinition"],
) -> dg.AssetsDefinition:
    """The asset of `definition`; `project_ingestions` (every ingestion of the project) are
    the tables created on the target before the run's branch is forked."""
    key = dg.AssetKey(definition.asset_key)
    freshness = None
    if definition.freshness_hours is not None:
        warn, fail = definition.freshness_hours
        freshness = dg.FreshnessPolicy.time_window(
            fail_window=dt.timedelta(hours=fail), warn_window=dt.timedelta(hours=warn)
        )
    ident = definition.table_identifier(project.namespace)

    @dg.asset(
        key=key,
        group_name=definition.group,
        kinds={"dlt", "iceberg"},
        description=definition.description,
        partitions_def=partitions_for(definition, project, project_ingestions),
        retry_policy=dg.RetryPolicy(
            max_retries=definition.max_retries,
            delay=definition.retry_delay_seconds,
            backoff=dg.Backoff.EXPONENTIAL,
        ),
        freshness_policy=freshness,
        check_specs=[
            dg.AssetCheckSpec(CHECK_NAME, asset=key, blocking=definition.strict_validation)
        ],
        required_resource_keys={RESOURCE_KEY},
        metadata={"dagster/table_name": ident, "phlo/unique_key": definition.unique_key},
    )
    # Dagster reads this annotation at definition time: it must be a real class (no
    # `from __future__ import annotations` in this module).
    def ingest(context: dg.AssetExecutionContext) -> Iterator[Any]:
        yield from run_ingestion(context, definition, project_ingestions)

    return ingest


def run_ingestion(
    context: dg.AssetExecutionContext,
    definition: "IngestionDefinition",
    project_ingestions: Sequence["IngestionDefinition"],
) -> Iterator[Any]:
    """The asset body: `phlo.ingestion.runner.execute` for the run's partition on the run's
    branch (never publishing: the promotion sensor does), reported to Dagster."""
    from phlo.ingestion.runner import execute

    resource = getattr(context.resources, RESOURCE_KEY)
    ref = resource.run_ref(context, project_ingestions)
    try:
        result = execute(
            definition,
            context.partition_key,
            lakehouse=resource.open(),
            branch=ref,
            target=resource.target,
            run_id=context.run.run_id,
            namespace=definition.namespace or resource.namespace,
        )
    except SourceError as exc:
        # Extraction already retried the source (max_retries, backoff) within the time limit:
        # the step's RetryPolicy is for the other failures (storage, catalog).
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    key = dg.AssetKey(definition.asset_key)
    check = _check_result(key, result.contract)
    if result.status == "failed_contract":
        yield check
        raise dg.Failure(
            description=result.contract_failure(),
            metadata={"phlo/staged_files": [str(f) for f in result.staged_files]},
            allow_retries=False,
        )
    yield dg.MaterializeResult(
        asset_key=key, metadata=materialization_metadata(result), check_results=[check]
    )


def materialization_metadata(result: "IngestionResult") -> dict[str, Any]:
    """Dagster's keys (``dagster/row_count``: the rows this run wrote for its partition,
    inserted + updated; ``dagster/column_schema``; ``dagster/table_name``) and phlo's."""
    metadata: dict[str, Any] = {
        "dagster/row_count": result.rows_inserted + result.rows_updated,
        "dagster/table_name": result.table,
        "phlo/status": result.status,
        "phlo/partition_date": result.partition_date,
        "phlo/branch": result.branch,
        "phlo/target": result.target,
        "phlo/snapshot_id": "" if result.snapshot_id is None else str(result.snapshot_id),
        "phlo/rows_extracted": result.rows_extracted,
        "phlo/rows_inserted": result.rows_inserted,
        "phlo/rows_updated": result.rows_updated,
        "phlo/rows_deleted": result.rows_deleted,
        "phlo/duplicates_dropped": result.duplicates_dropped,
    }
    for phase, seconds in result.timings.items():
        metadata[f"phlo/seconds_{phase}"] = float(seconds)
    if result.schema is not None:
        metadata["dagster/column_schema"] = column_schema(result.schema)
    return metadata


def column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=field.name,
                type=str(field.type),
                constraints=dg.TableColumnConstraints(nullable=field.nullable),
            )
            for field in schema
        ]
    )


def _check_result(key: dg.AssetKey, contract: "CheckResult | None") -> dg.AssetCheckResult:
    if contract is None:  # the runner always reports the contract; keep the check declared
        return dg.AssetCheckResult(asset_key=key, check_name=CHECK_NAME, passed=True)
    return check_result(key, contract)


def check_result(key: dg.AssetKey, result: "CheckResult") -> dg.AssetCheckResult:
    """A phlo `CheckResult` as Dagster reports it: the metadata contract as metadata, the
    one-line failure as description."""
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=result.name,
        passed=result.passed,
        severity=dg.AssetCheckSeverity.WARN
        if result.severity == "warn"
        else dg.AssetCheckSeverity.ERROR,
        description=result.message or None,
        metadata=result.metadata(),
    )
