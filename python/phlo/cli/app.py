"""The `phlo` command group: global options, and phlo errors shown as one clean line."""

from __future__ import annotations

import click

from phlo._native import __version__
from phlo.errors import PhloError
from phlo.lakehouse import Lakehouse


class _Group(click.Group):
    """Shows phlo errors as one clean line (code, message) instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except PhloError as exc:
            raise click.ClickException(f"[{exc.code}] {exc}") from exc


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="phlo", message="%(prog)s %(version)s")
@click.option(
    "--root",
    envvar="PHLO_ROOT",
    default=".phlo",
    show_default=True,
    help="Lakehouse folder (catalog.db + warehouse/). Env: PHLO_ROOT.",
)
@click.pass_context
def main(ctx: click.Context, root: str) -> None:
    """phlo: a data lakehouse with a Rust engine and a Python face."""
    ctx.obj = root


def open_lakehouse(ctx: click.Context) -> Lakehouse:
    """The lakehouse the command line points at (`--root`)."""
    return Lakehouse.open(ctx.obj)
