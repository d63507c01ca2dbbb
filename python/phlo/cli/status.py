"""`phlo status`: the project's tables, branches, recent runs and open WAP branches."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
from pathlib import Path
from typing import Any

import click

from phlo import wap
from phlo.cli import output
from phlo.cli.app import main, open_lakehouse, state_of
from phlo.cli.execution import ASSETS_TAG
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
    lh = open_lakehouse(ctx)
    project = state_of(ctx).config().root
    runs = _recent_runs(project, run_limit)
    by_id = {r["run_id"]: r for r in runs}
    report = {
        "project": project,
        "lakehouse": lh.root,
        "tables": _tables(lh),
        "branches": lh.branches(),
        "tags": lh.tags(),
        "runs": runs,
        "wap_branches": [
            {
                "branch": wap.run_branch(run_id),
                "run_id": run_id,
                "created": created,
                "run_status": by_id.get(run_id, {}).get("status") or _run_status(project, run_id),
            }
            for run_id, created in sorted(wap.run_branches(lh).items(), key=lambda i: i[1])
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
            found.append(
                {
                    "table": name,
                    "rows": int(current.summary.get("total-records", 0)) if current else 0,
                    "snapshots": len(history),
                    "last_change": current.timestamp if current else None,
                    "last_operation": current.operation if current else None,
                }
            )
    return found


def _home(project: Path) -> Path | None:
    """The Dagster home `phlo materialize` uses, if it exists (status creates nothing)."""
    home = Path(os.environ.get("DAGSTER_HOME") or project / ".phlo" / "dagster")
    return home if home.is_dir() and importlib.util.find_spec("dagster") else None


def _recent_runs(project: Path, limit: int) -> list[dict[str, Any]]:
    home = _home(project)
    if home is None or limit == 0:
        return []
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [_run(record) for record in instance.get_run_records(limit=limit)]


def _run_status(project: Path, run_id: str) -> str | None:
    home = _home(project)
    if home is None:
        return None
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        return run.status.value if run else None


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
    click.echo(f"lakehouse  {report['lakehouse']}")
    click.echo(f"tables ({len(report['tables'])})")
    for t in report["tables"]:
        when = f"{t['last_change']:%Y-%m-%d %H:%M:%S}" if t["last_change"] else "never written"
        click.echo(
            f"  {t['table']:<32} {t['rows']:>10} rows  {t['snapshots']:>4} snapshots  {when}"
        )
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
