"""Commands that write project files: `phlo init` (a new project from a template) and
`phlo create-workflow` (a new table in the current project)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from phlo.cli import output
from phlo.cli.app import main, project_config
from phlo.errors import ConfigError
from phlo.scaffold import COLUMN_TYPES, Workflow, add_workflow, init_project, template_names


@main.command()
@click.argument("name", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--template",
    type=click.Choice(template_names()),
    default="minimal",
    show_default=True,
    help="Project template.",
)
@output.json_option
@click.pass_context
def init(ctx: click.Context, name: Path, template: str) -> None:
    """Write a new, runnable project into the folder NAME (new or empty)."""
    written = init_project(name, template)
    if output.is_json(ctx):
        output.print_json({"project": name.resolve(), "template": template, "files": written})
        return
    click.echo(f"created {name}/ from template {template} ({len(written)} files)")
    click.echo(f"next: cd {name} && phlo materialize")


@main.command("create-workflow")
@click.option("--domain", help="Group of the table: workflows/*/DOMAIN, Dagster group.")
@click.option("--table", help="Table name (lowercase), written to NAMESPACE.TABLE.")
@click.option(
    "--column",
    "columns",
    multiple=True,
    metavar="NAME:TYPE",
    help=f"A column (repeat the option); TYPE is one of {', '.join(COLUMN_TYPES)}.",
)
@click.option("--unique-key", help="The key column rows are merged by (default: the first).")
@click.option("--cron", default="0 6 * * *", show_default=True, help="Schedule of the ingestion.")
@output.json_option
@click.pass_context
def create_workflow(
    ctx: click.Context,
    domain: str | None,
    table: str | None,
    columns: tuple[str, ...],
    unique_key: str | None,
    cron: str,
) -> None:
    """Add a table to the project: its Pandera contract, an ingestion, quality checks and a
    test. Missing options are asked for when a terminal is attached."""
    project = project_config(ctx)
    if project.file is None:
        raise ConfigError(
            f"{project.root} is not a phlo project (no phlo.yaml here or above): "
            "run phlo create-workflow inside one, or create one with phlo init NAME"
        )
    ask = _interactive() and not output.is_json(ctx)
    domain = domain or _ask(ask, "--domain", "Domain (group of tables)")
    table = table or _ask(ask, "--table", "Table name")
    if not columns:
        answer = _ask(ask, "--column", "Columns as NAME:TYPE, comma-separated", "id:int")
        columns = tuple(c.strip() for c in answer.split(",") if c.strip())
    parsed = tuple(_column(c) for c in columns)
    if unique_key is None:
        unique_key = parsed[0][0] if not ask else click.prompt("Unique key", default=parsed[0][0])
    workflow = Workflow(
        domain=domain,
        table=table,
        columns=parsed,
        key=unique_key,
        cron=cron,
        namespace=project.namespace,
    )
    written = add_workflow(project.root, workflow)
    if output.is_json(ctx):
        output.print_json({"project": project.root, "files": written})
        return
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: pytest tests/test_{table}.py, then phlo materialize")


def _interactive() -> bool:
    return sys.stdin.isatty()


def _ask(interactive: bool, option: str, question: str, default: str | None = None) -> str:
    if not interactive:
        raise click.UsageError(f"missing {option} (or run in a terminal to be asked)")
    return str(click.prompt(question, default=default))


def _column(text: str) -> tuple[str, str]:
    name, colon, kind = text.partition(":")
    if not colon:
        raise click.BadParameter(f"{text!r}: write NAME:TYPE, e.g. id:int", param_hint="--column")
    return name.strip(), kind.strip()
