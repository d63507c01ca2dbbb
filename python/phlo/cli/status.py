"""`phlo status`: the project's tables, branches, recent runs and open WAP branches."""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from phlo import wap
from phlo.cli import output
from phlo.cli.app import main, open_lakehouse, state_of
from phlo.cli.execution import ASSETS_TAG, dagster_home_path, repair_runs
from phlo.cli.located import not_created_yet
from phlo.display import row_count
from phlo.lakehouse import Lakehouse


@main.command()
@click.option(
    "-n",
    "--runs",
    "run_limit",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Recent runs to show.",
)
@output.json_option
@click.pass_context
def status(ctx: click.Context, run_limit: int) -> None:
    """Tables (rows, snapshots, last change), branches, recent runs, open WAP branches."""
    state = state_of(ctx)
    # A new project's lakehouse is created by its first run: reported, not an error.
    config = state.config()
    lh = None if state.root is None and not_created_yet(config) else open_lakehouse(ctx)
    project = config.root
    open_branches = sorted(wap.run_branches(lh).items(), key=lambda item: item[1]) if lh else []
    with _instance(project) as instance:
        records = instance.get_run_records(limit=run_limit) if instance and run_limit else []
        runs = [_run(r) for r in records]
        run_states = {
            run_id: run.status.value
            if instance and (run := instance.get_run_by_id(run_id))
            else None
            for run_id, _created in open_branches
        }
    report = {
        "project": project,
        "lakehouse": lh.warehouse if lh else None,
        "lakehouse_folder": str(config.lakehouse_path),
        "tables": _tables(lh) if lh else [],
        "branches": lh.branches() if lh else [],
        "tags": lh.tags() if lh else [],
        "runs": runs,
        "wap_branches": [
            {
                "branch": wap.run_branch(run_id),
                "run_id": run_id,
                "created": created,
                "run_status": run_states[run_id],
            }
            for run_id, created in open_branches
        ],
    }
    if output.is_json(ctx):
        output.print_json(report)
        return
    _echo(report)


def _tables(lh: Lakehouse) -> list[dict[str, Any]]:
    found = []
    for namespace in lh.namespaces():
        for name in lh.tables(namespace):
            history = lh.table(name).history()
            current = history[-1] if history else None
            rows, upper_bound = row_count(current.summary) if current else (0, False)
            found.append(
                {
                    "table": name,
                    "rows": rows,
                    # Rows deleted by delete files (merge-on-read) are still counted.
                    "rows_upper_bound": upper_bound,
                    "snapshots": len(history),
                    "last_change": current.timestamp if current else None,
                    "last_operation": current.operation if current else None,
                }
            )
    return found


@contextlib.contextmanager
def _instance(project: Path) -> Iterator[Any]:
    """The Dagster instance `phlo materialize` records runs in, or None when there is none
    yet or Dagster is not installed (status creates nothing; it only marks failed the runs a
    killed process left STARTED)."""
    home = dagster_home_path(project)
    if not home.is_dir() or importlib.util.find_spec("dagster") is None:
        yield None
        return
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        repair_runs(instance)  # a run a killed process left STARTED is not shown as running
        yield instance


def _run(record: Any) -> dict[str, Any]:
    run = record.dagster_run
    started = record.start_time
    return {
        "run_id": run.run_id,
        "status": run.status.value,
        "partition": run.tags.get("dagster/partition"),
        "assets": sorted(k.to_user_string() for k in run.asset_selection or [])
        or [a for a in run.tags.get(ASSETS_TAG, "").split(",") if a],
        "promotion": run.tags.get("phlo/promotion"),
        "started": dt.datetime.fromtimestamp(started, dt.UTC) if started else None,
    }


def _echo(report: dict[str, Any]) -> None:
    click.echo(f"project    {report['project']}")
    where = report["lakehouse"] or (
        f"not created yet at {report['lakehouse_folder']} (the first `phlo materialize` creates it)"
    )
    click.echo(f"lakehouse  {where}")
    click.echo(f"tables ({len(report['tables'])})")
    for t in report["tables"]:
        when = f"{t['last_change']:%Y-%m-%d %H:%M:%S}" if t["last_change"] else "never written"
        rows = f"≤ {t['rows']}" if t["rows_upper_bound"] else str(t["rows"])
        click.echo(f"  {t['table']:<32} {rows:>10} rows  {t['snapshots']:>4} snapshots  {when}")
    click.echo(f"branches   {', '.join(report['branches'])}")
    click.echo(f"tags       {', '.join(report['tags']) or '-'}")
    click.echo(f"recent runs ({len(report['runs'])})")
    for r in report["runs"]:
        when = f"{r['started']:%Y-%m-%d %H:%M:%S}" if r["started"] else "not started"
        click.echo(
            f"  {r['run_id'][:8]}  {when}  {r['status']:<9} {r['partition'] or '-':<10} "
            f"{', '.join(r['assets']) or '-'}  promotion: {r['promotion'] or '-'}"
        )
    click.echo(f"open WAP branches ({len(report['wap_branches'])})")
    for b in report["wap_branches"]:
        click.echo(
            f"  {b['branch']}  created {b['created']:%Y-%m-%d %H:%M:%S}  "
            f"run {b['run_status'] or 'unknown to Dagster'}"
        )
