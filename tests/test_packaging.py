"""Packaging: the version, the extras and their ranges around the lock, and `import phlo`
with only the core install (optional libraries hidden in a subprocess) giving a
`MissingExtraError` that names the extra to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from click.testing import CliRunner
from packaging.requirements import Requirement

import phlo
from phlo._extras import EXTRAS
from phlo.cli import main

ROOT = Path(__file__).parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: Top-level modules the extras bring; the core install has none of them.
OPTIONAL = (
    "dagster",
    "dagster_dbt",
    "dagster_webserver",
    "dlt",
    "duckdb",
    "dbt",
    "polars",
    "adbc_driver_postgresql",
    "adbc_driver_manager",
)


def test_version_is_the_crates_and_phlo_version_prints_it():
    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert phlo.__version__ == cargo["workspace"]["package"]["version"]
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and result.output == f"phlo {phlo.__version__}\n"


def lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        pins[canonical(name)] = version.strip()
    return pins


def canonical(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def test_every_requirement_admits_the_locked_version():
    pins = lock()
    project = PYPROJECT["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += [Requirement(r) for r in extra if not r.startswith("phlo[")]
    checked = 0
    for requirement in requirements:
        pinned = pins.get(canonical(requirement.name))
        assert pinned is not None, f"{requirement} is not pinned in requirements-dev.txt"
        assert requirement.specifier.contains(pinned), f"{requirement} excludes the lock's {pinned}"
        checked += 1
    assert checked >= 15


def test_extras_phlo_checks_for_are_the_packages_extras():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(EXTRAS) == set(extras) - {"all"}
    assert Requirement(extras["all"][0]).extras == set(EXTRAS)
    core = {canonical(Requirement(r).name) for r in PYPROJECT["project"]["dependencies"]}
    assert core == {"pyarrow", "pandera", "click", "rich", "pyyaml", "pydantic-settings"}


def run_without_extras(code: str) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter in which the optional libraries cannot be imported
    (as after ``pip install phlo``)."""
    hide = textwrap.dedent(f"""
        import importlib.abc, sys
        HIDDEN = {OPTIONAL!r}

        class Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in HIDDEN:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, Hide())
    """)
    return subprocess.run(
        [sys.executable, "-c", hide + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_core_install_imports_phlo_and_runs_the_cli(tmp_path):
    result = run_without_extras(f"""
        import sys
        import phlo, phlo.cli, phlo.quality, phlo.publishing, phlo.ingestion, phlo.scaffold
        from click.testing import CliRunner
        loaded = sorted(m for m in sys.modules if m.partition(".")[0] in HIDDEN)
        assert loaded == [], loaded
        lh = phlo.Lakehouse.open({str(tmp_path / "lh")!r})
        lh.create_namespace("raw")
        lh.create_table("raw.t", {{"id": __import__("pyarrow").int64()}}).append([{{"id": 1}}])
        assert lh.table("raw.t").to_arrow().num_rows == 1
        run = CliRunner().invoke(phlo.cli.main, ["init", {str(tmp_path / "p")!r}])
        assert run.exit_code == 0, run.output
        print("ok", phlo.__version__)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ok {phlo.__version__}\n"


def test_a_missing_extra_is_a_typed_error_naming_it(tmp_path):
    result = run_without_extras(f"""
        import phlo
        from phlo.errors import MissingExtraError

        def refused(action):
            try:
                action()
            except MissingExtraError as exc:
                assert isinstance(exc, ImportError) and exc.code == "missing_extra"
                print(exc.extra, "|", exc)
            else:
                raise AssertionError("no MissingExtraError")

        lh = phlo.Lakehouse.open({str(tmp_path / "lh")!r})
        lh.create_namespace("raw")
        table = lh.create_table("raw.t", {{"id": __import__("pyarrow").int64()}})
        refused(lambda: __import__("phlo.dagster"))
        refused(lambda: lh.sql("SELECT 1"))
        refused(lambda: table.scan().to_polars())
        from phlo.publishing import publish_marts_to_postgres
        refused(lambda: publish_marts_to_postgres(
            None, {{"t": "raw.t"}}, lakehouse=lh, connection="postgresql://u@127.0.0.1:1/db"))
        from phlo._extras import require
        refused(lambda: require("dbt"))
        refused(lambda: require("dlt"))
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.partition(" | ")[0] for line in lines] == [
        "dagster",
        "sql",
        "polars",
        "postgres",
        "dbt",
        "dlt",
    ]
    assert lines[0].endswith(
        "phlo.dagster needs 'dagster', which is not installed: pip install 'phlo[dagster]'"
    )
    for line in lines:
        extra, _, message = line.partition(" | ")
        assert message.endswith(f"pip install 'phlo[{extra}]'")


def test_the_cli_shows_a_missing_extra_as_one_line(tmp_path):
    phlo.Lakehouse.open(tmp_path)  # `sql` reads an existing lakehouse only
    result = run_without_extras(f"""
        from click.testing import CliRunner
        from phlo.cli import main
        run = CliRunner().invoke(main, ["--root", {str(tmp_path)!r}, "sql", "SELECT 1"])
        print(run.exit_code, run.output, end="")
    """)
    assert result.returncode == 0, result.stderr
    code, _, shown = result.stdout.partition(" ")
    assert code != "0" and "Traceback" not in shown
    assert "[missing_extra]" in shown and "needs 'duckdb', which is not installed" in shown
    assert "pip install 'phlo[sql]'" in shown
