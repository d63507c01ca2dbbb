"""Every `phlo ...` command line in a shell block of docs/*.md and README.md parses: the
command exists and takes the options and arguments written (click's own parser, nothing run),
so a renamed option or command cannot linger in the docs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from tests.test_docs import blocks, doc_files

from phlo.cli import main

SHELL = ("bash", "sh", "shell", "console", "")


def command_lines(path: Path) -> list[tuple[int, str]]:
    found = []
    for block in blocks(path):
        if block.language not in SHELL:
            continue
        for offset, line in _logical_lines(block.code):
            line = line.strip().removeprefix("$ ")
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("phlo "):
                    found.append((block.line + offset, part))
    return found


def _logical_lines(code: str) -> list[tuple[int, str]]:
    """Lines joined across a trailing backslash or an open quote (a query over two lines)."""
    lines, start, pending = [], 0, ""
    for number, line in enumerate(code.splitlines()):
        if not pending:
            start = number
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1]
            continue
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # an open quote
            continue
        lines.append((start, pending))
        pending = ""
    return lines


def parse(line: str) -> None:
    """Parses the command line as `phlo` would, down to the leaf command; raises click's
    UsageError when it does not."""
    line = re.sub(r"<[^>]*>", "VALUE", line).removesuffix("&").strip()  # placeholders
    # A synopsis marks optional parts with brackets: `phlo log [--ref main] [-n 20]`.
    args = [a.removeprefix("[").removesuffix("]") for a in shlex.split(line, comments=True)[1:]]
    command: click.Command = main
    ctx = command.make_context("phlo", args)
    while isinstance(command, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return
        name, sub, rest = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        command, ctx = sub, sub.make_context(name, rest, parent=ctx)


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(p.parents[1])))
def test_every_documented_command_line_parses(path: Path) -> None:
    problems = []
    for line_number, line in command_lines(path):
        try:
            parse(line)
        except click.exceptions.Exit:  # --help, --version
            pass
        except click.BadParameter as exc:
            if "does not exist" not in exc.format_message():  # an example's input file
                problems.append(f"{path.name}:{line_number}: {line}\n    {exc.format_message()}")
        except click.UsageError as exc:
            problems.append(f"{path.name}:{line_number}: {line}\n    {exc.format_message()}")
    assert not problems, "\n".join(problems)
