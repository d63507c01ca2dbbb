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
    assert result.exit_code == 4
    assert "[no_such_table] table raw.nope does not exist" in result.output
    assert "hint: `phlo tables` lists the tables" in result.output
    assert "Traceback" not in result.output


def test_branch_and_tag_commands(lh, events_table):
    events_table.append(make_events(0, 5))
    assert run(lh, "branch", "create", "dev").output.strip() == "created branch dev from main"
    assert run(lh, "branch", "list").output.split() == ["main", "dev"]
    lh.table("raw.events", ref="dev").append(make_events(5, 5))
    assert "+5 rows  total 10" in run(lh, "show", "raw.events", "--ref", "dev").output
    assert "total 10" not in run(lh, "show", "raw.events").output
    assert run(lh, "branch", "diff", "dev").output.strip() == "~ raw.events"
    assert run(lh, "branch", "merge", "dev").output.strip() == "fast-forwarded raw.events"
    assert events_table.scan().to_arrow().num_rows == 10
    log = run(lh, "log", "--ref", "main").output
    assert "merge dev into main" in log and "append raw.events" in log
    assert run(lh, "tag", "create", "v1").exit_code == 0
    assert run(lh, "tag").output.split() == ["v1"]
    assert run(lh, "branch", "delete", "dev").exit_code == 0
    failed = run(lh, "branch", "merge", "dev")
    assert failed.exit_code == 4 and "[invalid_input] ref dev does not exist" in failed.output
