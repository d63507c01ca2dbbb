"""`phlo validate`: the project loads (settings, every workflow module, its Dagster
definitions), or one data file against a Pandera schema."""

from __future__ import annotations

from typing import Any

import click

from phlo._extras import require
from phlo.cli import output, parsing
from phlo.cli.app import main, project_config


@main.command()
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--schema", "schema_spec", help="module:Model of a Pandera schema (with PATH).")
@click.option(
    "--max-failure-cases", type=click.IntRange(min=0), default=None, help="Cases kept per check."
)
@output.json_option
@click.pass_context
def validate(
    ctx: click.Context, path: str | None, schema_spec: str | None, max_failure_cases: int | None
) -> None:
    """Check that the project loads: phlo.yaml and the environment, every workflows/**.py
    module, and the Dagster definitions they build (exit code 3 when not).

    With PATH and --schema: validate a Parquet or CSV file against a Pandera schema instead
    (exit code 1 on failures)."""
    if path is None and schema_spec is None:
        validate_project(ctx)
    elif path is None or schema_spec is None:
        raise click.UsageError("validating a file needs both PATH and --schema module:Model")
    else:
        validate_file(ctx, path, schema_spec, max_failure_cases)


def validate_project(ctx: click.Context) -> None:
    from phlo.discovery import discover, workflow_modules

    config = project_config(ctx)
    with output.activity("importing the workflows"):
        workflows = discover(config.root)
    summary: dict[str, Any] = {
        "valid": True,
        "project": str(config.root),
        "config_file": str(config.file) if config.file else None,
        "profile": config.profile,
        "modules": [name for name, _ in workflow_modules(config.root)],
        "ingestions": [d.asset_key for d in workflows.ingestions],
        "quality": [q.name for q in workflows.quality],
    }
    require("dagster", "building the project's Dagster definitions")
    import phlo.dagster

    with output.activity("building the Dagster definitions"):
        defs = phlo.dagster.definitions(config.root)
    repository = defs.get_repository_def()  # builds everything: a broken definition fails
    graph = repository.asset_graph
    summary["definitions"] = {
        "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
        "asset_checks": sorted(
            f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys
        ),
        "jobs": sorted(j.name for j in repository.get_all_jobs() if not j.name.startswith("__")),
        "schedules": sorted(s.name for s in repository.schedule_defs),
        "sensors": sorted(s.name for s in repository.sensor_defs),
    }
    if output.is_json(ctx):
        output.print_json(summary)
        return
    found = summary["definitions"]
    click.echo(f"project {config.root} ({config.file or 'no phlo.yaml'}, profile {config.profile})")
    click.echo(
        f"{len(summary['modules'])} workflow modules: {len(summary['ingestions'])} ingestions, "
        f"{len(summary['quality'])} quality definitions"
    )
    click.echo(
        f"definitions: {len(found['assets'])} assets, {len(found['asset_checks'])} asset checks, "
        f"{len(found['jobs'])} jobs, {len(found['schedules'])} schedules, "
        f"{len(found['sensors'])} sensors"
    )
    click.echo("valid")


def validate_file(
    ctx: click.Context, path: str, schema_spec: str, max_failure_cases: int | None
) -> None:
    import pyarrow.csv
    import pyarrow.parquet

    from phlo.validation import Validator

    data = pyarrow.csv.read_csv(path) if path.endswith(".csv") else pyarrow.parquet.read_table(path)
    validator = Validator(parsing.load_object(schema_spec), max_failure_cases=max_failure_cases)
    with output.activity(f"validating {path}"):
        report = validator.report(data)
    if output.is_json(ctx):
        output.print_json(
            {
                "valid": report.valid,
                "file": path,
                "rows": data.num_rows,
                "native_checks": len(report.native_checks),
                "pandera_checks": len(report.pandera_checks),
                "failures": report.records,
            }
        )
    else:
        click.echo(
            f"{len(report.native_checks)} checks in the engine, "
            f"{len(report.pandera_checks)} by Pandera"
        )
        if report.valid:
            click.echo(f"valid: {report.table.num_rows} rows")
        for r in report.records:
            sample = ", ".join(
                f"row {s['index']}: {s['failure_case']!r}"
                for s in r["sample"][:3]
                if s["index"] is not None
            )
            click.echo(f"FAIL [{r['code']}] {r['column']}: {r['check']} x{r['count']}  {sample}")
    if not report.valid:
        ctx.exit(output.FAILURES)
