"""The `phlo` command on a real lakehouse."""

from __future__ import annotations

from click.testing import CliRunner
from tests.conftest import make_events

from phlo.cli import main


def run(lh, *args: str):
    return CliRunner().invoke(main, ["--root", str(lh.root), *args])


def test_tables_show_and_head(lh, events_table):
    events_table.append(make_events(0, 20))
    assert run(lh, "namespaces").output.split() == ["raw"]
    assert run(lh, "tables").output.split() == ["raw.events"]
    shown = run(lh, "show", "raw.events")
    assert shown.exit_code == 0
    assert "day(ts)" in shown.output and "+20 rows  total 20" in shown.output
    assert "id" in shown.output and "required" in shown.output
    head = run(lh, "head", "raw.events", "-n", "3")
    assert head.exit_code == 0 and len(head.output.strip().splitlines()) == 3


def test_errors_are_one_clean_line(lh):
    result = run(lh, "show", "raw.nope")
    assert result.exit_code == 1
    assert "[no_such_table] table raw.nope does not exist" in result.output
    assert "Traceback" not in result.output
