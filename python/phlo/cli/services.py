"""`phlo services`: the files that run a project's scaled shape (docker compose, Trino's
catalog), generated from its settings."""

from __future__ import annotations

from pathlib import Path

import click

from phlo.cli import output
from phlo.cli.app import main, project_config


@main.group("services")
def services_group() -> None:
    """Generate what runs the scaled profile: docker compose (MinIO, PostgreSQL, phlo's REST
    catalog, Trino, Dagster) and Trino's catalog file."""


@services_group.command("init")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write into (default: <project>/services).",
)
@click.option("--force", is_flag=True, help="Replace files that exist.")
@click.option(
    "--bind",
    default="127.0.0.1",
    show_default=True,
    help="Host address the services' ports bind to.",
)
@output.json_option
@click.pass_context
def services_init(ctx: click.Context, folder: Path | None, force: bool, bind: str) -> None:
    """Write docker-compose.yml, .env.example (placeholder secrets), the phlo image's
    Dockerfile, Dagster's instance file, Trino's catalog file and the dbt-trino profile.
    Refuses to replace existing files without --force."""
    from phlo.services.stack import write_stack

    config = project_config(ctx)
    folder = folder if folder is not None else config.root / "services"
    written = write_stack(config, folder, force=force, bind=bind)
    if output.is_json(ctx):
        output.print_json({"dir": folder.resolve(), "files": [str(p) for p in written]})
        return
    for path in written:
        click.echo(f"wrote {folder / path}")
    click.echo(
        f"next: cd {folder} && cp .env.example .env (set the secrets) && docker compose up -d"
    )


@services_group.command("trino-catalog")
@click.option(
    "--rest-uri",
    default=None,
    help="The REST catalog Trino reads (e.g. `phlo catalog serve`'s http://HOST:8181/iceberg); "
    "default: catalog.uri of the settings.",
)
@click.pass_context
def services_trino_catalog(ctx: click.Context, rest_uri: str | None) -> None:
    """Print Trino's Iceberg catalog file for the project's settings (secrets as ${ENV:...}
    references). Save it as etc/catalog/<trino.catalog>.properties. Untested: no Trino here."""
    from phlo.services.trino import trino_catalog_properties

    click.echo(trino_catalog_properties(project_config(ctx), rest_uri=rest_uri), nl=False)
