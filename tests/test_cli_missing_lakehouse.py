"""Commands that read a lakehouse refuse one that is not there (a mistyped `--root`,
`PHLO_LAKEHOUSE`, `lakehouse` or ``catalog.uri``): before, each created an empty lakehouse at
the path and answered "no tables" as if that were the truth. Nothing may be created on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.dagster_support import project

from phlo.cli import main

__all__ = ["project"]  # fixture

#: A representative command of each kind: listing, reading a table, SQL, the log, refs,
#: status, maintenance, deleting rows, merging.
READING = [
    ["tables"],
    ["namespaces"],
    ["show", "raw.events"],
    ["head", "raw.events"],
    ["sql", "SELECT 42"],
    ["log"],
    ["branch", "list"],
    ["branch", "diff", "dev"],
    ["tag"],
    ["status"],
    ["maintain", "expire"],
    ["delete", "raw.events", "--where", "id = 1"],
    ["branch", "merge", "dev"],
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in __import__("os").environ if n.upper().startswith("PHLO_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


@pytest.mark.parametrize("args", READING, ids=lambda a: " ".join(a[:2]))
def test_a_mistyped_root_is_an_error_and_creates_nothing(
    project: Path, tmp_path: Path, args: list[str]
) -> None:
    typo = tmp_path / "lakehous"
    result = CliRunner().invoke(main, ["--project", str(project), "--root", str(typo), *args])
    assert result.exit_code == 4, result.output
    assert result.output.startswith(f"[no_lakehouse] no lakehouse at {typo}"), result.output
    assert "flag --root" in result.output and "nothing was created" in result.output
    assert "hint: if the path is mistyped, correct --root" in result.output
    assert not typo.exists()
    assert not (project / ".phlo").exists()


def test_the_json_error_and_a_mistyped_variable(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    typo = tmp_path / "nowhere" / "lake"
    monkeypatch.setenv("PHLO_LAKEHOUSE", str(typo))
    result = CliRunner().invoke(main, ["--project", str(project), "tables", "--json"])
    assert result.exit_code == 4
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "no_lakehouse"
    assert "environment variable PHLO_LAKEHOUSE" in error["message"]
    assert "phlo config show" in error["hint"]
    assert not (tmp_path / "nowhere").exists()


def test_a_mistyped_sqlite_catalog_uri(project: Path) -> None:
    (project / "phlo.yaml").write_text(
        "catalog: {uri: 'sqlite:///shraed/catalog.db'}\n"
        f"storage: {{warehouse: '{(project / 'shared' / 'warehouse').as_uri()}'}}\n"
    )
    result = CliRunner().invoke(main, ["--project", str(project), "branch", "list"])
    assert result.exit_code == 4, result.output
    assert f"no lakehouse catalog at {project / 'shraed' / 'catalog.db'}" in result.output
    assert "phlo.yaml: catalog.uri" in result.output
    assert not (project / "shraed").exists() and not (project / "shared").exists()


def test_a_new_project_with_its_warehouse_on_s3(project: Path) -> None:
    """The catalog is still the project's own file (the warehouse elsewhere): before the first
    run, status says the lakehouse is not created yet, as for a local one; a reading command
    names the missing file, not a catalog.uri the settings do not have. Nothing is contacted."""
    (project / "phlo.yaml").write_text(
        "storage: {bucket: lake, endpoint: 'http://127.0.0.1:9', access_key_id: a, "
        "secret_access_key: b}\n"
    )
    status = CliRunner().invoke(main, ["--project", str(project), "status", "--json"])
    assert status.exit_code == 0, status.output
    report = json.loads(status.stdout)
    assert report["lakehouse"] is None and report["lakehouse_folder"] == str(project / ".phlo")
    tables = CliRunner().invoke(main, ["--project", str(project), "tables"])
    assert tables.exit_code == 4
    assert f"no lakehouse catalog at {project / '.phlo' / 'catalog.db'} (the path" in tables.output
    assert "catalog.uri sqlite" not in tables.output
    assert not (project / ".phlo").exists()


def test_outside_a_project_the_hint_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["tables"])
    assert result.exit_code == 4
    assert f"no lakehouse at {tmp_path / '.phlo'}" in result.output
    assert "the default" in result.output and "`phlo init NAME`" in result.output
    assert not (tmp_path / ".phlo").exists()


def test_commands_that_write_may_start_a_lakehouse(project: Path, tmp_path: Path) -> None:
    """`branch create`, `tag create` (and `materialize`) start a lakehouse where none is;
    doctor checks the folder without creating a catalog."""
    (project / ".phlo").mkdir()
    doctor = CliRunner().invoke(main, ["--project", str(project), "doctor", "--json"])
    (check,) = [c for c in json.loads(doctor.stdout)["checks"] if c["check"] == "lakehouse"]
    assert check["status"] == "ok" and "created on first use" in check["detail"]
    assert not (project / ".phlo" / "catalog.db").exists()
    new = tmp_path / "new"
    result = CliRunner().invoke(main, ["--root", str(new), "branch", "create", "dev"])
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(main, ["--root", str(new), "branch", "list"])
    assert listed.output.split() == ["main", "dev"]
