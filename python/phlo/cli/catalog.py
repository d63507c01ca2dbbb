"""`phlo catalog serve`: the lakehouse's versioned catalog as an Iceberg REST catalog, so
PyIceberg, DuckDB and other engines read and write phlo's branches (docs/catalog-server.md)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import NoReturn

import click

from phlo.catalog_server import CatalogServer
from phlo.cli import output
from phlo.cli.app import main, open_lakehouse
from phlo.lakehouse import Lakehouse


@main.group()
def catalog() -> None:
    """Serve the lakehouse's catalog to other engines."""


def _stop(*_: object) -> NoReturn:
    raise KeyboardInterrupt


@catalog.command("serve")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Lakehouse folder to serve (default: phlo's --root, else the project's lakehouse).",
)
@click.option(
    "--catalog",
    "catalog_uri",
    default=None,
    help="Catalog URI to serve instead of a lakehouse folder (with --warehouse).",
)
@click.option("--warehouse", default=None, help="Warehouse URI of --catalog.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8181,
    show_default=True,
    help="Port to bind (0: a free one, printed).",
)
@click.option(
    "--token",
    envvar="PHLO_CATALOG_TOKEN",
    default=None,
    help="Require this bearer token from clients (env PHLO_CATALOG_TOKEN).",
)
@click.option("--log-requests", is_flag=True, help="Print one line per request on stderr.")
@click.option(
    "--vend-credentials",
    is_flag=True,
    help="Hand the warehouse's storage settings, its own S3 keys included, to every client "
    "that loads a table (trusted networks only).",
)
@output.json_option
@click.pass_context
def serve(
    ctx: click.Context,
    root: Path | None,
    catalog_uri: str | None,
    warehouse: str | None,
    host: str,
    port: int,
    token: str | None,
    log_requests: bool,
    vend_credentials: bool,
) -> None:
    """Serve the catalog as an Iceberg REST catalog until Ctrl-C. Clients use
    http://HOST:PORT for main and http://HOST:PORT/iceberg/REF for a branch or tag."""
    lakehouse = _lakehouse(ctx, root, catalog_uri, warehouse)
    try:
        server = CatalogServer(
            lakehouse,
            host,
            port,
            token=token,
            log_requests=log_requests,
            vend_credentials=vend_credentials,
        )
    except OSError as exc:
        raise output.CliError(
            "address_in_use" if exc.errno == 98 else "error",
            f"cannot listen on {host}:{port}: {exc.strerror}",
            output.ERROR,
            "pick another --port (0 picks a free one), or stop what listens there",
        ) from exc
    if output.is_json(ctx):
        output.print_json(
            {"uri": server.uri, "warehouse": lakehouse.warehouse, "token": token is not None}
        )
    else:
        click.echo(f"serving the catalog of {lakehouse.warehouse} as an Iceberg REST catalog")
        click.echo(f"  main:      {server.uri}")
        click.echo(f"  a branch:  {server.uri}/iceberg/<branch>")
        if token is not None:
            click.echo("  clients need the token (PyIceberg: token=...)")
        if vend_credentials:
            click.echo("  clients get the warehouse's S3 keys: trusted networks only")
        click.echo("Ctrl-C stops it", nl=True)
    # Ctrl-C stops it even when started in the background (where the shell ignores SIGINT
    # for it); SIGTERM (a service manager, a test) stops it as Ctrl-C does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    if not output.is_json(ctx):
        click.echo("stopped")


def _lakehouse(
    ctx: click.Context, root: Path | None, catalog_uri: str | None, warehouse: str | None
) -> Lakehouse:
    """The lakehouse to serve: a catalog URI + warehouse, else a folder."""
    if catalog_uri is None and warehouse is None:
        return Lakehouse.open(root) if root is not None else open_lakehouse(ctx, create=True)
    if catalog_uri is None or warehouse is None or root is not None:
        raise click.UsageError("--catalog and --warehouse go together, and not with --root")
    # Object-store credentials come from the AWS_* environment variables.
    return Lakehouse.connect(catalog_uri, warehouse)
