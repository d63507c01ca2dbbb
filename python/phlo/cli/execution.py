"""Running a project's assets in this process through Dagster, as `phlo materialize` and
`phlo backfill` do: the project's definitions, its asset checks, then WAP promotion (what the
``auto_promotion_sensor`` does when a daemon runs), summarised as plain data."""

from __future__ import annotations

import fnmatch
import functools
import os
import sys
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from phlo.cli import output, run_locks
from phlo.cli.interrupts import on_interrupt

if TYPE_CHECKING:
    import dagster as dg

__all__ = [
    "RunReport",
    "assets_of",
    "dagster_home",
    "dagster_home_path",
    "open_instance",
    "plan",
    "repair_runs",
    "run_assets",
    "select",
]

#: Dagster's own console log: phlo reports what ran itself.
_QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
#: A run tag unique to one `run_assets` call: how an interrupt finds the run it stops.
_CALL_TAG = "phlo/cli_call"
#: The run tag naming the assets a run materialized (``dg.materialize`` runs have no asset
#: selection of their own).
ASSETS_TAG = "phlo/assets"
#: Promotion outcomes that leave nothing unpublished.
_PUBLISHED = ("published", "already_published", "no_branch")


@dataclass
class CheckReport:
    asset: str
    name: str
    passed: bool
    severity: str
    blocking: bool
    description: str | None = None


@dataclass
class RunReport:
    """One Dagster run of some assets for one partition, and its promotion."""

    partition: str | None
    assets: list[str]
    run_id: str | None = None
    success: bool = False
    #: Asset → rows the run wrote for the partition (``dagster/row_count``).
    rows: dict[str, int | None] = field(default_factory=dict)
    checks: list[CheckReport] = field(default_factory=list)
    #: ``published``, ``already_published``, ``no_branch``, ``blocked``, ``conflict``.
    promotion: str | None = None
    promotion_reason: str = ""
    published_tables: list[str] = field(default_factory=list)
    #: The marts promotion published to PostgreSQL, by ``schema.table``: the lakehouse table
    #: (``source``), ``snapshot_id``, ``mode`` (``full``, ``incremental``, ``unchanged``),
    #: ``rows`` and ``rows_deleted`` sent.
    postgres: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The run succeeded, no check failed, and its writes are published."""
        return (
            self.success
            and all(c.passed for c in self.checks if c.severity == "ERROR")
            and self.promotion in _PUBLISHED
        )

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunReport:
        fields = {k: v for k, v in data.items() if k not in ("ok", "checks")}
        return cls(**fields, checks=[CheckReport(**c) for c in data["checks"]])


def dagster_home_path(project_root: Path) -> Path:
    """``DAGSTER_HOME`` when set, else ``<project>/.phlo/dagster``: `phlo materialize`,
    `phlo backfill`, `phlo status` and `phlo dev` share the runs there."""
    return Path(os.environ.get("DAGSTER_HOME") or project_root / ".phlo" / "dagster")


def dagster_home(project_root: Path) -> Path:
    """`dagster_home_path`, created; a new one gets a ``dagster.yaml`` with Dagster's telemetry
    off (phlo sends nothing anywhere; ``DAGSTER_DISABLE_TELEMETRY`` only stops the upload)."""
    home = dagster_home_path(project_root)
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists() and not (home / "dagster.yml").exists():
        settings.write_text("telemetry:\n  enabled: false\n")
    return home


#: The settings file of the instance the command's runs use: the home's own settings with
#: compute-log capture off. Capture redirects a step's stdout and stderr to a file mirrored by
#: `tail` subprocesses (two per step), which Ctrl-C in the terminal also reaches (each printing
#: a traceback) and which swallow what the command prints when interrupted; without it a step's
#: output goes straight to the terminal.
CLI_SETTINGS = ".phlo-cli.yaml"
_NO_CAPTURE = {
    "module": "dagster._core.storage.noop_compute_log_manager",
    "class": "NoOpComputeLogManager",
}


def open_instance(project_root: Path, *, repair: bool = True) -> dg.DagsterInstance:
    """The project's Dagster instance; with `repair`, runs a killed process left STARTED are
    marked failed first (`repair_runs`)."""
    import dagster as dg
    import yaml

    home = dagster_home(project_root)
    own = next((f for f in (home / "dagster.yaml", home / "dagster.yml") if f.exists()), None)
    settings = (yaml.safe_load(own.read_text()) if own else None) or {}
    text = yaml.safe_dump({**settings, "compute_logs": _NO_CAPTURE}, sort_keys=False)
    target = home / CLI_SETTINGS
    if not target.exists() or target.read_text() != text:
        written = home / f"{CLI_SETTINGS}.{os.getpid()}"  # parallel workers write it too
        written.write_text(text)
        os.replace(written, target)
    instance = dg.DagsterInstance.from_config(str(home), config_filename=CLI_SETTINGS)
    if repair:
        repair_runs(instance)
    return instance


def repair_runs(instance: dg.DagsterInstance) -> None:
    """Marks failed the runs a killed `phlo` process left STARTED (`phlo.cli.run_locks`),
    saying so on stderr."""
    home = Path(instance.root_directory)
    for run_id in run_locks.repair(instance, home, _CALL_TAG):
        click.echo(
            f"note: run {run_id[:8]} was left STARTED by a phlo process that ended mid-run "
            "(killed?): marked FAILURE",
            err=True,
        )


def select(defs: dg.Definitions, patterns: Sequence[str]) -> list[dg.AssetsDefinition]:
    """The project's assets whose key (``dlt_events``, ``marts/daily``) or group
    (``group:api``) matches one of `patterns` (shell globs); all of them without patterns."""
    assets = assets_of(defs)
    if not assets:
        raise output.CliError(
            "usage",
            "the project defines no assets (no @phlo_ingestion in workflows/**/*.py)",
            output.USAGE,
            hint="`phlo validate` shows what the project defines; is --project the right folder?",
        )
    if not patterns:
        return assets
    chosen: list[dg.AssetsDefinition] = []
    for pattern in patterns:
        matched = [a for a in assets if _matches(a, pattern)]
        if not matched:
            names = sorted(k.to_user_string() for a in assets for k in a.keys)
            raise click.BadParameter(
                f"{pattern!r} matches no asset; the project's assets: {', '.join(names)}",
                param_hint="--select",
            )
        chosen.extend(a for a in matched if a not in chosen)
    return chosen


def assets_of(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    """The project's assets that can run (not external specs)."""
    import dagster as dg

    return [a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)]


def _matches(asset: dg.AssetsDefinition, pattern: str) -> bool:
    if pattern.startswith("group:"):
        group = pattern.removeprefix("group:")
        return any(fnmatch.fnmatchcase(g, group) for g in asset.group_names_by_key.values())
    return any(fnmatch.fnmatchcase(k.to_user_string(), pattern) for k in asset.keys)


def plan(
    assets: Sequence[dg.AssetsDefinition], partition: str | None
) -> list[tuple[str | None, list[dg.AssetsDefinition]]]:
    """One run per partitions definition (Dagster runs one partitions definition per run):
    the given partition, else each definition's last partition (today for an intra-day cron,
    else yesterday); None for unpartitioned assets."""
    groups: dict[Any, list[dg.AssetsDefinition]] = {}
    for asset in assets:
        groups.setdefault(asset.partitions_def, []).append(asset)
    runs = []
    for partitions, members in groups.items():
        key = None
        if partitions is not None:
            key = partition or partitions.get_last_partition_key()
            if key is None or not partitions.has_partition_key(key):
                raise click.BadParameter(
                    f"{partition!r} is no partition of "
                    f"{', '.join(a.key.to_user_string() for a in members)} ({partitions})",
                    param_hint="--partition",
                )
        runs.append((key, members))
    return runs


def run_assets(
    defs: dg.Definitions,
    assets: Sequence[dg.AssetsDefinition],
    partition: str | None,
    instance: dg.DagsterInstance,
) -> RunReport:
    """One in-process run of `assets` (with every asset check on them) for `partition`, then
    its promotion."""
    import dagster as dg

    import phlo.dagster

    keys = {k for a in assets for k in a.keys}
    checks = [c for c in defs.asset_checks or [] if all(s.asset_key in keys for s in c.check_specs)]
    report = RunReport(partition, sorted(k.to_user_string() for k in keys))
    call = uuid.uuid4().hex
    stop = functools.partial(_stop, instance, call, partition, output.is_json())
    with run_locks.held(Path(instance.root_directory), call), on_interrupt(stop):
        result = dg.materialize(
            [*assets, *checks],
            partition_key=partition,
            instance=instance,
            resources=defs.resources,
            run_config=_QUIET,
            tags={ASSETS_TAG: ",".join(report.assets), _CALL_TAG: call},
            raise_on_error=False,
        )
    report.run_id = result.run_id
    report.success = result.success
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        row_count = materialization.metadata.get("dagster/row_count")
        value = row_count.value if row_count is not None else None
        report.rows[materialization.asset_key.to_user_string()] = (
            value if isinstance(value, int) else None
        )
    for evaluation in result.get_asset_check_evaluations():
        report.checks.append(
            CheckReport(
                asset=evaluation.asset_key.to_user_string(),
                name=evaluation.check_name,
                passed=evaluation.passed,
                severity=evaluation.severity.value,
                blocking=bool(evaluation.blocking),
                description=evaluation.description,
            )
        )
    for failure in result.get_step_failure_events():
        message = _step_error(failure.step_failure_data)
        if message is not None:
            report.errors.append(f"{failure.step_key}: {message}")
    outcome = phlo.dagster.promote(instance, result.run_id)
    report.promotion = outcome.status
    report.promotion_reason = outcome.reason
    if outcome.promotion is not None:
        report.published_tables = outcome.promotion.tables
    report.postgres = {
        table: {
            "source": p.source,
            "snapshot_id": p.snapshot_id,
            "mode": p.mode,
            "rows": p.rows,
            "rows_deleted": p.rows_deleted,
        }
        for table, p in outcome.published.items()
    }
    return report


def _step_error(data: Any) -> str | None:
    """What a failed step raised, without Dagster's class names; None for Dagster's own
    "blocking asset check failed" (the check is reported, with its reason, as a check)."""
    user = data.user_failure_data
    if user is not None and user.description:
        return str(user.description)
    error = data.error
    if error is None:
        return "failed"
    if error.cls_name == "DagsterAssetCheckFailedError":
        return None
    retried = error.cls_name.startswith("RetryRequested")  # "Exceeded max_retries"
    while error.cause is not None and (retried or error.cls_name in _WRAPPERS):
        error = error.cause
    message = str(error.message).strip()
    if error.cls_name == "Failure" or message.startswith("phlo.errors."):
        message = message.split(": ", 1)[-1]  # the class is in the message already
    return f"{message} (failed on every retry)" if retried else message


#: Dagster's wrappers around what a step raised.
_WRAPPERS = {"DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"}


def _stop(instance: dg.DagsterInstance, call: str, partition: str | None, as_json: bool) -> None:
    """Ctrl-C during a run (see `phlo.cli.interrupts`): the run is recorded as canceled and the
    command ends with exit code 130; the message says what the run left (`what_was_written`:
    nothing published under WAP, its commits on the target with WAP off)."""
    import dagster as dg

    from phlo.cli.interrupted import what_was_written

    runs = instance.get_runs(filters=dg.RunsFilter(tags={_CALL_TAG: call}))
    for run in runs:
        if not run.is_finished:
            instance.report_run_canceled(run, message="interrupted (Ctrl-C) by the phlo command")
    where = partition or "the unpartitioned assets"
    stopped = [
        f"run {run.run_id[:8]} of {where} stopped, {what_was_written(run.run_id, run.tags)}"
        for run in runs
    ]
    output.emit_error(
        "interrupted",
        "interrupted: " + ("; ".join(stopped) or f"the run of {where} had not started"),
        "run the command again: the partition is written anew",
        as_json,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(output.INTERRUPTED)
