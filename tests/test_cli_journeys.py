"""A user's journey through `phlo materialize` when things go wrong the way they do: Ctrl-C
mid-run, a broken workflow module, a quality check naming a column the table lacks, a contract
the data does not match. Each failure is one clear line (no Dagster class names, nothing said
twice) with its exit code, and the next run works. In process (CliRunner) on a copy of
tests/projects/events."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from tests.dagster_support import lakehouse_of, project, run_branches
from tests.test_cli_project import PHLO, as_json, clean_env, phlo_cli, with_quality

import phlo
from phlo.cli import main

__all__ = ["clean_env", "project"]  # fixtures

#: An ingestion that presses Ctrl-C on its first call (SIGINT to its process group, as a
#: terminal does), then returns its rows.
INTERRUPTED_SOURCE = """
import os, signal, time
from pathlib import Path

from workflows.schemas.events import UserSchema

from phlo import phlo_ingestion

MARKER = Path(__file__).with_suffix(".pressed")


@phlo_ingestion(
    table_name="pressed",
    unique_key="id",
    validation_schema=UserSchema,
    group="keys",
    retry_delay_seconds=60,  # only phlo's watcher, however late it runs, can end the command
)
def keys_pressed(partition_date: str) -> list[dict[str, object]]:
    if not MARKER.exists():
        MARKER.touch()
        os.killpg(os.getpgid(0), signal.SIGINT)  # the whole process group, as a terminal
        time.sleep(5)  # the interrupt lands here
    return [{"id": 1, "name": partition_date}]
"""


def test_ctrl_c_stops_the_run_unpublished_and_the_rerun_works(project: Path) -> None:
    """Dagster turns an interrupted step into a retry: without phlo's watcher the step ran
    again after its retry delay and the run was published, exit code 0. The command ends the
    process, so it runs in a process of its own."""
    (project / "workflows" / "ingestion" / "keys.py").write_text(INTERRUPTED_SOURCE)
    args = ("materialize", "--select", "dlt_pressed", "--partition", "2025-01-02")
    done = subprocess.run(
        [*PHLO, "--project", str(project), *args],
        capture_output=True,
        text=True,
        timeout=300,
        start_new_session=True,  # a process group of its own, pytest outside it
    )
    assert done.returncode == 130, done.stdout + done.stderr
    assert "[interrupted]" in done.stderr and "nothing published" in done.stderr
    assert "Traceback" not in done.stderr  # no helper process of Dagster's complains
    assert "published raw.pressed" not in done.stdout
    assert _rows_on_main(project, "pressed") == 0
    status = phlo_cli(project, "status", "--json")
    assert [r["status"] for r in json.loads(status.stdout)["runs"]] == ["CANCELED"]
    result = phlo_cli(project, *args)
    assert result.exit_code == 0, result.output
    assert _rows_on_main(project, "pressed") == 1, result.output


def _rows_on_main(project: Path, table: str) -> int:
    lh = lakehouse_of(project)
    if f"raw.{table}" not in lh.tables("raw"):
        return 0
    return lh.table(f"raw.{table}").to_arrow().num_rows


def test_a_broken_workflow_module_gets_a_hint_about_modules(project: Path) -> None:
    (project / "workflows" / "broken.py").write_text("x = (\n")
    result = phlo_cli(project, "materialize", "--partition", "2025-01-02")
    assert result.exit_code == 3
    assert "broken.py" in result.output and "SyntaxError" in result.output
    assert "phlo validate" in result.output  # the hint points at the module check


def test_a_check_on_a_missing_column_is_reported_once_without_dagster_noise(
    project: Path,
) -> None:
    folder = project / "workflows" / "quality"
    folder.mkdir()
    (folder / "events.py").write_text(
        "from phlo import phlo_quality\n"
        "from phlo.quality import RangeCheck\n"
        "@phlo_quality(table='raw.events', checks=[RangeCheck(column='valeu', min_value=0)])\n"
        "def events_quality():\n"
        "    '''Values stay in range.'''\n"
    )
    result = phlo_cli(project, "materialize", "--select", "dlt_events", "--partition", "2025-01-02")
    assert result.exit_code == 1
    assert "column valeu is not in the table" in result.output
    assert "dagster." not in result.output  # no framework class names
    assert result.output.count("dlt_events:range_check_valeu") == 2  # checked, blocked
    assert run_branches(project)  # kept for investigation; main untouched
    with_quality(project, max_value=100)
    (folder / "events.py").unlink()
    result = phlo_cli(project, "materialize", "--select", "dlt_events", "--partition", "2025-01-02")
    assert result.exit_code == 0, result.output


def test_a_failing_contract_is_said_once_and_names_the_missing_column(project: Path) -> None:
    schema = project / "workflows" / "schemas" / "events.py"
    schema.write_text(schema.read_text().replace("value:", "amount:", 1))
    result = phlo_cli(project, "materialize", "--select", "dlt_events", "--partition", "2025-01-02")
    assert result.exit_code == 1
    assert "dagster." not in result.output
    assert result.output.count("the Pandera contract failed") == 1
    assert "'amount'" in result.output  # which column the data lacks


def test_sql_without_a_table_runs(project: Path) -> None:
    """A first try, `phlo sql "SELECT 42"`, crashed with a DuckDB traceback: the parse of the
    query left a result unfinished on the connection."""
    lakehouse_of(project)  # a lakehouse without tables (where none is, sql refuses)
    result = phlo_cli(project, "sql", "SELECT 42 AS answer")
    assert result.exit_code == 0, result.output
    assert "answer" in result.output and "42" in result.output


def test_a_lakehouse_that_cannot_open_fails_before_any_run(project: Path) -> None:
    """It was retried in every step (minutes with the default retry delays) and reported as
    Dagster's "Exceeded max_retries of 3"."""
    (project / "phlo.yaml").write_text("lakehouse: phlo.yaml\n")  # a file, not a folder
    result = phlo_cli(project, "materialize", "--select", "dlt_events", "--partition", "2025-01-02")
    assert result.exit_code == 4, result.output
    assert result.output.startswith("[storage]") and "phlo.yaml" in result.output


def test_a_step_failing_on_every_retry_says_why(project: Path) -> None:
    """Dagster reports only "Exceeded max_retries of 2"; the command names the cause: here
    raw.events exists with an id column the contract's integers cannot go into."""
    lh = lakehouse_of(project)
    lh.create_namespace("raw")
    lh.create_table("raw.events", {"id": pa.date32(), "category": pa.string()})
    result = phlo_cli(project, "materialize", "--select", "dlt_events", "--partition", "2025-01-02")
    assert result.exit_code == 1, result.output
    assert "max_retries" not in result.output and "(failed on every retry)" in result.output
    assert "phlo.errors." not in result.output


def test_init_and_create_workflow_take_the_global_options_and_json(tmp_path: Path) -> None:
    """`create-workflow` ignored `--project` (it looked for phlo.yaml from the current folder);
    `init` and `create-workflow` had no `--json`; an unknown template was exit code 4; a second
    `init` got the generic hint."""
    runner = CliRunner()
    result = runner.invoke(main, ["init", str(tmp_path / "demo"), "--template", "nope"])
    assert result.exit_code == 2 and "'nope' is not one of" in result.output
    result = runner.invoke(main, ["init", str(tmp_path / "demo"), "--json"])
    assert result.exit_code == 0, result.output
    again = runner.invoke(main, ["init", str(tmp_path / "demo")])  # a user running it twice
    assert again.exit_code == 4 and "[would_overwrite]" in again.output
    assert "hint: nothing was written" in again.output  # not the generic pointer to the docs
    assert "phlo.yaml" in json.loads(result.stdout)["files"]
    args = ["--domain", "shop", "--table", "orders", "--column", "order_id:int", "--json"]
    result = runner.invoke(main, ["--project", str(tmp_path / "demo"), "create-workflow", *args])
    assert result.exit_code == 0, result.output
    files = json.loads(result.stdout)["files"]
    assert "workflows/schemas/shop.py" in files
    assert all((tmp_path / "demo" / f).is_file() for f in files)


def test_every_option_of_every_command_says_what_it_is() -> None:
    """`phlo dev --help` showed `--port` without a word."""
    import click

    def commands(group: click.Group, path: str) -> list[tuple[str, click.Command]]:
        found = []
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                found += commands(command, f"{path} {name}")
            found.append((f"{path} {name}", command))
        return found

    silent = [
        f"{path} --{param.name}"
        for path, command in commands(main, "phlo")
        for param in command.params
        if isinstance(param, click.Option) and not param.help
    ]
    assert silent == []


def test_doctor_warns_about_a_mistyped_phlo_variable(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings ignore unknown PHLO_ variables of the environment: PHLO_NAMESPCE=bronze
    changed nothing and nothing said so."""
    monkeypatch.setenv("PHLO_NAMESPCE", "bronze")
    monkeypatch.setenv("PHLO_CATALOG_TOKEN", "s3cret")  # read by phlo catalog serve
    result = phlo_cli(project, "doctor", "--json")
    warned = [c for c in as_json(result)["checks"] if c["check"] == "environment"]
    assert [c["status"] for c in warned] == ["warn"]
    assert "PHLO_NAMESPCE" in warned[0]["detail"] and "PHLO_NAMESPACE" in warned[0]["detail"]
    assert result.exit_code == 0  # a warning, not a failure


def test_log_columns_line_up_with_a_runs_long_branch_name(lh: phlo.Lakehouse) -> None:
    lh.create_branch("pipeline-run-0f60191a-4ea2-47bd-8306-7c148c9796c4")
    lh.create_table("raw.t", {"id": pa.int64()})
    result = CliRunner().invoke(main, ["--root", str(lh._native.root), "log"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2
    starts = {line.index(message) for line, message in zip(lines, _messages(lh), strict=True)}
    assert len(starts) == 1, result.output


def _messages(lh: phlo.Lakehouse) -> list[str]:
    return [e.message for e in lh.log(None, 20)]
