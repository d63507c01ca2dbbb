"""`phlo materialize` and `phlo backfill`: the project's assets run in this process through
Dagster (checks included), each run published through WAP as the promotion sensor would."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

import click

from phlo._extras import require
from phlo.cli import output
from phlo.cli.app import main, project_config
from phlo.cli.execution import RunReport, assets_of, open_instance, plan, run_assets, select

if TYPE_CHECKING:
    import dagster as dg

    from phlo.config import ProjectConfig

_SELECT_HELP = (
    "Assets to run: a key (dlt_events), a glob (dlt_*) or group:NAME; repeatable. Default: all."
)


def load_definitions(config: ProjectConfig) -> dg.Definitions:
    config.require_embedded()
    require("dagster", "running the project's assets")
    import phlo.dagster

    with output.activity("loading the project"):
        return phlo.dagster.definitions(config.root)


@main.command()
@click.option("--select", "patterns", multiple=True, help=_SELECT_HELP)
@click.option(
    "--partition",
    help="Day to run (YYYY-MM-DD). Default: the latest partition of each asset.",
)
@output.json_option
@click.pass_context
def materialize(ctx: click.Context, patterns: tuple[str, ...], partition: str | None) -> None:
    """Run the project's assets now, with their checks, and publish each run's writes
    (exit code 1 when a run, a check or a publication failed)."""
    config = project_config(ctx)
    defs = load_definitions(config)
    runs = plan(select(defs, patterns), partition)
    instance = open_instance(config.root)
    reports = []
    with output.progress(len(runs), "materializing") as advance:
        for key, assets in runs:
            reports.append(run_assets(defs, assets, key, instance))
            advance(key or "")
    ok = all(r.ok for r in reports)
    if output.is_json(ctx):
        output.print_json({"ok": ok, "runs": [r.to_json() for r in reports]})
    else:
        for report in reports:
            _echo_report(report, config.wap.target)
    if not ok:
        ctx.exit(output.FAILURES)


def _echo_report(report: RunReport, target: str) -> None:
    state = "succeeded" if report.success else "FAILED"
    run = (report.run_id or "-")[:8]
    click.echo(f"{report.partition or 'unpartitioned'}  run {run}  {state}")
    for asset, rows in report.rows.items():
        click.echo(f"  {asset}: {'?' if rows is None else rows} rows")
    for error in report.errors:
        click.echo(f"  error {error}")
    for check in report.checks:
        verdict = "passed" if check.passed else f"FAILED ({check.severity})"
        detail = f": {check.description}" if check.description and not check.passed else ""
        click.echo(f"  check {check.asset}:{check.name} {verdict}{detail}")
    if report.promotion in ("published", "already_published"):
        click.echo(f"  published {', '.join(report.published_tables) or 'no tables'} into {target}")
    elif report.promotion == "no_branch":
        click.echo("  nothing to publish")
    else:
        click.echo(f"  not published ({report.promotion}): {report.promotion_reason}")


def _days(start: dt.date, end: dt.date) -> list[str]:
    if end < start:
        raise click.BadParameter(f"{end} is before --start {start}", param_hint="--end")
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


@main.command()
@click.option("--start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day.")
@click.option("--end", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last day.")
@click.option("--select", "patterns", multiple=True, help=_SELECT_HELP)
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Partitions run at once (each in its own process).",
)
@output.json_option
@click.pass_context
def backfill(
    ctx: click.Context,
    start: dt.datetime,
    end: dt.datetime,
    patterns: tuple[str, ...],
    parallel: int,
) -> None:
    """Run the project's assets for every day from --start to --end (one run per day, each
    published on its own); lists the failed days (exit code 1 when any failed)."""
    config = project_config(ctx)
    defs = load_definitions(config)
    assets = select(defs, patterns)
    tasks = [(day, run) for day in _days(start.date(), end.date()) for run in plan(assets, day)]
    reports: list[RunReport] = []
    with output.progress(len(tasks), "backfilling") as advance:
        if parallel == 1:
            instance = open_instance(config.root)
            for _day, (key, members) in tasks:
                reports.append(run_assets(defs, members, key, instance))
                advance(key or "")
        else:
            for report in _in_processes(config.root, tasks, parallel):
                reports.append(report)
                advance(report.partition or "")
    reports.sort(key=lambda r: (r.partition or "", r.assets))
    failed = sorted({r.partition or "unpartitioned" for r in reports if not r.ok})
    if output.is_json(ctx):
        output.print_json(
            {
                "ok": not failed,
                "partitions": len({day for day, _ in tasks}),
                "failed_partitions": failed,
                "runs": [r.to_json() for r in reports],
            }
        )
    else:
        for report in reports:
            rows = sum(n or 0 for n in report.rows.values())
            state = "ok" if report.ok else f"FAILED ({report.promotion})"
            click.echo(f"{report.partition}  {', '.join(report.assets)}  {rows} rows  {state}")
        done = len({day for day, _ in tasks}) - len(failed)
        click.echo(f"{done} partitions succeeded, {len(failed)} failed")
        for report in reports:
            if not report.ok:
                reason = "; ".join(report.errors) or report.promotion_reason
                click.echo(f"failed {report.partition}: {reason}")
    if failed:
        ctx.exit(output.FAILURES)


def _in_processes(
    root: Path,
    tasks: Sequence[tuple[str, tuple[str | None, Sequence[dg.AssetsDefinition]]]],
    parallel: int,
) -> list[RunReport]:
    """Runs the tasks in `parallel` fresh processes (spawned: no engine or database handle
    of this process is shared), in completion order."""
    from concurrent.futures import as_completed

    done = []
    with ProcessPoolExecutor(
        max_workers=parallel,
        mp_context=get_context("spawn"),
        initializer=_worker_start,
        initargs=(str(root),),
    ) as pool:
        futures: list[Future[RunReport]] = [
            pool.submit(
                _worker_run, str(root), [k.to_user_string() for a in m for k in a.keys], key
            )
            for _day, (key, m) in tasks
        ]
        try:
            for future in as_completed(futures):
                done.append(future.result())
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise
    return done


#: The project's definitions in a backfill worker process.
_worker_defs: dg.Definitions | None = None


def _worker_start(root: str) -> None:
    global _worker_defs
    import phlo.dagster

    _worker_defs = phlo.dagster.definitions(root)


def _worker_run(root: str, keys: list[str], partition: str | None) -> RunReport:
    assert _worker_defs is not None
    assets = [a for a in assets_of(_worker_defs) if any(k.to_user_string() in keys for k in a.keys)]
    return run_assets(_worker_defs, assets, partition, open_instance(Path(root)))
