"""What every command shares about output: ``--json``, exit codes, errors as one line plus a
hint, and progress displays that appear only on a terminal."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

__all__ = [
    "CONFIG",
    "ERROR",
    "FAILURES",
    "INTERRUPTED",
    "MISSING_EXTRA",
    "OK",
    "USAGE",
    "CliError",
    "activity",
    "emit_error",
    "exit_code_of",
    "hint_for",
    "is_json",
    "json_option",
    "print_json",
    "print_names",
    "progress",
    "set_json",
]

#: Exit codes (docs/cli.md).
OK = 0
#: The command ran and found failures: validation, a check, a run or partition, doctor.
FAILURES = 1
#: A bad flag or argument (click's usage errors).
USAGE = 2
#: phlo.yaml / .env.local / environment invalid, or the project does not load.
CONFIG = 3
#: The lakehouse refused or failed the operation (no such table, conflict, bad input, ...).
ERROR = 4
#: An optional dependency is not installed.
MISSING_EXTRA = 5
#: Ctrl-C.
INTERRUPTED = 130

#: What to do next, by error code.
_HINTS = {
    "config": "fix the setting or workflow file named above; `phlo validate` checks that the "
    "project loads, `phlo config show` prints the effective settings (docs/configuration.md)",
    "usage": "see `phlo COMMAND --help`",
    "no_such_table": "`phlo tables` lists the tables",
    "no_such_namespace": "`phlo namespaces` lists the namespaces",
    "invalid_input": "check the command's arguments (`phlo COMMAND --help`)",
    "commit_conflict": "another writer changed the same tables; run the command again",
    "commit_state_unknown": "check `phlo log` to see whether the commit landed before retrying",
    "storage": "check that the lakehouse folder exists and is writable (`phlo doctor`)",
    "sql": "check the query's tables and columns (`phlo tables`, `phlo show TABLE`)",
    "validation": "the failing checks and samples are listed above",
    "internal": "this is a bug or a corrupt file: please report it with the command you ran",
    "interrupted": "run the command again to finish",
    "would_overwrite": "nothing was written: pick another name, move the file away, or pass "
    "--force where the command takes it",
}
_DEFAULT_HINT = "docs/errors.md explains the error codes; `phlo doctor` checks the setup"


class CliError(click.ClickException):
    """An error of the command line itself (not raised by the library)."""

    def __init__(self, code: str, message: str, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code  # type: ignore[misc]  # click's is per class
        self.hint = hint


def hint_for(code: str) -> str:
    return _HINTS.get(code, _DEFAULT_HINT)


def exit_code_of(code: str) -> int:
    """The exit code of a phlo error code."""
    if code == "config":
        return CONFIG
    if code == "missing_extra":
        return MISSING_EXTRA
    return ERROR


def emit_error(code: str, message: str, hint: str | None, as_json: bool) -> None:
    """``[code] message`` and ``hint: ...`` on stderr, or one JSON object on stdout."""
    hint = hint or hint_for(code)
    if as_json:
        print_json({"error": {"code": code, "message": message, "hint": hint}})
        return
    click.echo(f"[{code}] {message}", err=True)
    click.echo(f"hint: {hint}", err=True)


def set_json(ctx: click.Context) -> None:
    """JSON output for the rest of the command (no progress displays)."""
    ctx.meta["phlo.json"] = True


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        set_json(ctx)


F = TypeVar("F", bound=Callable[..., Any])


def json_option(command: F) -> F:
    """``--json``: print one JSON document (docs/cli.md gives each command's shape)."""
    return click.option(
        "--json",
        is_flag=True,
        expose_value=False,
        callback=_set_json,
        help="Print the result as JSON (no progress display).",
    )(command)


def is_json(ctx: click.Context | None = None) -> bool:
    ctx = ctx or click.get_current_context(silent=True)
    return bool(ctx and ctx.meta.get("phlo.json"))


def print_names(key: str, names: list[str]) -> None:
    """A list of names: one a line, or ``{key: [...]}`` under ``--json``."""
    if is_json():
        print_json({key: names})
        return
    for name in names:
        click.echo(name)


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, default=_plain, indent=2))


def _interactive() -> bool:
    """Progress displays only for a person at a terminal, never under ``--json``."""
    return sys.stderr.isatty() and not is_json()


@contextlib.contextmanager
def progress(total: int, description: str) -> Iterator[Callable[[str], None]]:
    """A progress bar on stderr (when interactive); yields ``advance(label)``."""
    if not _interactive():
        yield lambda _label: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total, last="")
        yield lambda label: bar.update(task, advance=1, last=label)


@contextlib.contextmanager
def activity(description: str) -> Iterator[None]:
    """A spinner with the elapsed time on stderr while one long step runs (when
    interactive)."""
    if not _interactive():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(description):
        yield
