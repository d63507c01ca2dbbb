"""The `phlo` command group: global options, the project and lakehouse they point at, and
every error shown as one ``[code] message`` line plus a hint, with a documented exit code."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from phlo._native import __version__
from phlo.cli import output
from phlo.cli.located import require_existing
from phlo.config import ProjectConfig, load_project
from phlo.errors import MissingExtraError, PhloError
from phlo.lakehouse import Lakehouse
from phlo.lakehouse_target import LakehouseTarget
from phlo.lakehouse_target import open_lakehouse as open_target


@dataclass
class CliState:
    """The global options, and the project they select (loaded on first use)."""

    project_dir: Path | None = None
    root: Path | None = None
    profile: str | None = None
    _config: ProjectConfig | None = field(default=None, repr=False)

    def config(self) -> ProjectConfig:
        if self._config is None:
            self._config = load_project(self.project_dir, profile=self.profile, lakehouse=self.root)
        return self._config

    @contextlib.contextmanager
    def flags_in_environment(self) -> Iterator[None]:
        """`--root` / `--profile` as ``PHLO_LAKEHOUSE`` / ``PHLO_PROFILE`` while a command
        runs: project code that loads the settings itself (definitions, ingestion runs,
        Dagster's processes) then sees the flags too, above any other source."""
        exported = {"PHLO_LAKEHOUSE": self.root, "PHLO_PROFILE": self.profile}
        saved = {name: os.environ.get(name) for name, value in exported.items() if value}
        for name in saved:
            os.environ[name] = str(exported[name])
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


class _Group(click.Group):
    """Turns every failure into ``[code] message`` + ``hint: ...`` on stderr (or a JSON
    ``{"error": ...}`` under ``--json``) and the exit code of docs/cli.md."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        as_json = "--json" in argv
        try:
            result = super().main(argv, prog_name, complete_var, False, **extra)
        except MissingExtraError as exc:
            output.emit_error(exc.code, str(exc), f"pip install 'phlo[{exc.extra}]'", as_json)
            sys.exit(output.MISSING_EXTRA)
        except PhloError as exc:
            output.emit_error(exc.code, str(exc), None, as_json)
            sys.exit(output.exit_code_of(exc.code))
        except output.CliError as exc:
            output.emit_error(exc.code, exc.message, exc.hint, as_json)
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else "phlo"
            output.emit_error("usage", exc.format_message(), f"see `{command} --help`", as_json)
            sys.exit(output.USAGE)
        except click.ClickException as exc:
            output.emit_error("error", exc.message, None, as_json)
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            output.emit_error("interrupted", "interrupted", None, as_json)
            sys.exit(output.INTERRUPTED)
        # Without standalone mode click returns ctx.exit()'s code, or the command's value.
        sys.exit(result if isinstance(result, int) else output.OK)


@click.group(cls=_Group, name="phlo")
@click.version_option(__version__, prog_name="phlo", message="%(prog)s %(version)s")
@click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Project folder (default: the nearest folder at or above the current one holding "
    "phlo.yaml).",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Lakehouse folder (catalog.db + warehouse/). Default: the project's lakehouse "
    "(PHLO_LAKEHOUSE, phlo.yaml's lakehouse, else .phlo).",
)
@click.option(
    "--profile",
    type=click.Choice(["embedded", "scaled"]),
    default=None,
    help="Settings profile (default: PHLO_PROFILE, phlo.yaml's profile, else embedded).",
)
@click.pass_context
def main(
    ctx: click.Context, project_dir: Path | None, root: Path | None, profile: str | None
) -> None:
    """phlo: a data lakehouse with a Rust engine and a Python face."""
    state = ctx.obj = CliState(
        project_dir=project_dir,
        root=root.resolve() if root is not None else None,
        profile=profile,
    )
    ctx.with_resource(state.flags_in_environment())


def state_of(ctx: click.Context) -> CliState:
    return ctx.ensure_object(CliState)


def project_config(ctx: click.Context) -> ProjectConfig:
    """The project the command line points at, with the flags applied."""
    return state_of(ctx).config()


def open_lakehouse(ctx: click.Context, *, create: bool = False) -> Lakehouse:
    """The lakehouse the command line points at: `--root`, else the project's. It must exist
    (`phlo.cli.located`: a mistyped path is an error, not a new empty lakehouse) unless
    `create`, for the commands that may start one."""
    state = state_of(ctx)
    if state.root is not None:
        if not create:
            require_existing(LakehouseTarget.of_folder(state.root), None)
        return Lakehouse.open(state.root)
    config = state.config()
    target = config.lakehouse_target()
    if not create:
        require_existing(target, config)
    return open_target(target)
