"""`phlo init` and `phlo create-workflow`: the project they write loads in Dagster, ingests,
passes its own checks and tests; they refuse to overwrite anything."""

from __future__ import annotations

import ast
import csv
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner
from tests.dagster_support import instance

import phlo
import phlo.dagster
from phlo.cli import init as init_cli
from phlo.cli import main
from phlo.config import load_project
from phlo.errors import InputError, WouldOverwriteError
from phlo.scaffold import init_project, project

__all__ = ["instance"]  # fixture

DAY = "2025-01-02"
LAYOUT = {
    ".gitignore",
    ".phlo/.env.local.example",
    "README.md",
    "data/stations.csv",
    "definitions.py",
    "phlo.yaml",
    "pyproject.toml",
    "tests/test_weather.py",
    "workflows/ingestion/weather/readings.py",
    "workflows/ingestion/weather/source.py",
    "workflows/quality/weather.py",
    "workflows/schemas/weather.py",
    "workflows/transforms/dbt/README.md",
}


def cli(*args: str) -> object:
    return CliRunner().invoke(main, list(args))


def files_of(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def expected_reading_ids(project: Path, day: str) -> set[str]:
    """The oracle: one reading per shipped station and hour of the day."""
    with (project / "data" / "stations.csv").open() as file:
        stations = [row["station"] for row in csv.DictReader(file)]
    compact = day.replace("-", "")
    return {f"{s}-{compact}T{h:02d}" for s in stations for h in range(24)}


def run_pytest(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_init_writes_the_project_layout(tmp_path):
    result = cli("init", str(tmp_path / "weather_demo"))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "weather_demo"
    assert files_of(folder) == LAYOUT
    assert "created" in result.output and "phlo materialize" in result.output
    # The one substitution: the project's name.
    assert (folder / "README.md").read_text().startswith("# weather_demo\n")
    assert 'name = "weather_demo"' in (folder / "pyproject.toml").read_text()
    assert "__PROJECT__" not in "".join(
        (folder / f).read_text() for f in LAYOUT if not f.endswith(".csv")
    )
    assert load_project(folder).namespace == "raw"


def test_init_project_loads_materializes_and_publishes(tmp_path, instance):
    folder = tmp_path / "demo"
    init_project(folder)
    defs = phlo.dagster.definitions(folder)
    dg.Definitions.validate_loadable(defs)
    assert [a.key.to_user_string() for a in defs.assets] == ["dlt_readings"]  # type: ignore[union-attr]
    quality = {s.name for c in defs.asset_checks for s in c.check_specs}
    assert quality == {
        "null_check_reading_id_station_observed_at_temperature_c",
        "unique_check_reading_id",
        "range_check_temperature_c",
        "count_check",
    }

    result = dg.materialize(
        [defs.get_assets_def("dlt_readings"), *defs.asset_checks],
        partition_key=DAY,
        instance=instance,
        resources=defs.resources,
    )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {"pandera_contract", *quality}
    assert all(e.passed for e in evaluations)
    assert phlo.dagster.promote(instance, result.run_id).status == "published"

    table = phlo.Lakehouse.open(folder / ".phlo").table("raw.readings").to_arrow()
    assert set(table["reading_id"].to_pylist()) == expected_reading_ids(folder, DAY)
    assert table.num_rows == len(expected_reading_ids(folder, DAY))


def test_init_project_tests_pass_and_create_workflow_adds_a_passing_one(tmp_path, monkeypatch):
    folder = tmp_path / "demo"
    init_project(folder)
    monkeypatch.chdir(folder)
    added = cli(
        "create-workflow",
        "--domain=shop",
        "--table=orders",
        "--column=order_id:int",
        "--column=customer:str",
        "--column=ordered_at:datetime",
        "--column=amount:float",
        "--column=paid:bool",
        "--column=day:date",
    )
    assert added.exit_code == 0, added.output
    assert files_of(folder) - LAYOUT == {
        "workflows/schemas/shop.py",
        "workflows/ingestion/shop/orders.py",
        "workflows/quality/shop.py",
        "tests/test_orders.py",
    }
    outcome = run_pytest(folder)
    assert outcome.returncode == 0, outcome.stdout + outcome.stderr
    assert "5 passed" in outcome.stdout

    defs = phlo.dagster.definitions(folder)
    assert {a.key.to_user_string() for a in defs.assets} == {"dlt_readings", "dlt_orders"}  # type: ignore[union-attr]
    orders = next(iter(defs.get_assets_def("dlt_orders").specs))
    assert orders.group_name == "shop" and orders.metadata["dagster/table_name"] == "raw.orders"


def test_create_workflow_extends_an_existing_domain_file_with_only_missing_imports(
    tmp_path, monkeypatch
):
    folder = tmp_path / "demo"
    init_project(folder)
    monkeypatch.chdir(folder)
    quality = folder / "workflows" / "quality" / "weather.py"
    before = quality.read_text()
    assert (
        cli("create-workflow", "--domain=weather", "--table=alerts", "--column=id:str").exit_code
        == 0
    )

    text = quality.read_text()
    assert text.startswith(before.rstrip("\n"))  # appended, the user's code untouched
    tree = ast.parse(text)
    imports = [ast.unparse(n) for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert imports == [
        "from phlo import phlo_quality",
        "from phlo.quality import CountCheck, NullCheck, RangeCheck, UniqueCheck",
    ]
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions == ["readings_quality", "alerts_quality"]

    # A domain file holding only a docstring gets the imports after it.
    (folder / "workflows" / "schemas" / "shop.py").write_text('"""Shop contracts."""\n')
    assert (
        cli("create-workflow", "--domain=shop", "--table=carts", "--column=id:int").exit_code == 0
    )
    schema = ast.parse((folder / "workflows" / "schemas" / "shop.py").read_text())
    assert ast.get_docstring(schema) == "Shop contracts."
    assert [type(n).__name__ for n in schema.body] == ["Expr", "Import", "ImportFrom", "ClassDef"]
    assert "import pandas as pd" not in ast.unparse(schema)  # no datetime column


def test_create_workflow_asks_when_a_terminal_is_attached(tmp_path, monkeypatch):
    init_project(tmp_path / "demo")
    monkeypatch.chdir(tmp_path / "demo")
    monkeypatch.setattr(init_cli, "_interactive", lambda: True)
    answers = "shop\norders\norder_id:int, amount:float\n\n"
    result = CliRunner().invoke(main, ["create-workflow"], input=answers)
    assert result.exit_code == 0, result.output
    assert "Unique key [order_id]" in result.output
    text = (tmp_path / "demo" / "workflows" / "ingestion" / "shop" / "orders.py").read_text()
    assert 'unique_key="order_id"' in text and '"amount": i * 1.5' in text


def test_create_workflow_refuses_existing_tables_and_bad_input(tmp_path, monkeypatch):
    folder = tmp_path / "demo"
    init_project(folder)
    monkeypatch.chdir(folder)
    assert (
        cli("create-workflow", "--domain=shop", "--table=orders", "--column=id:int").exit_code == 0
    )
    snapshot = {f: (folder / f).read_text() for f in files_of(folder)}

    again = cli("create-workflow", "--domain=shop", "--table=orders", "--column=id:int")
    assert again.exit_code != 0
    assert "[would_overwrite]" in again.output and "orders.py already exists" in again.output
    # The contract class exists in the domain file, though the new files were removed.
    for new in ("workflows/ingestion/shop/orders.py", "tests/test_orders.py"):
        (folder / new).unlink()
        del snapshot[new]
    clash = cli("create-workflow", "--domain=shop", "--table=orders", "--column=id:int")
    assert clash.exit_code != 0 and "already defines OrdersSchema" in clash.output

    bad_type = cli("create-workflow", "--domain=shop", "--table=carts", "--column=id:uuid")
    assert bad_type.exit_code != 0 and "unknown type 'uuid'" in bad_type.output
    bad_key = cli(
        "create-workflow", "--domain=shop", "--table=carts", "--column=ok:bool", "--unique-key=ok"
    )
    assert bad_key.exit_code != 0 and "a key must be str, int, datetime" in bad_key.output
    bad_name = cli("create-workflow", "--domain=Shop", "--table=carts", "--column=id:int")
    assert (
        bad_name.exit_code != 0
        and "domain 'Shop' must be a lowercase Python name" in bad_name.output
    )
    missing = cli("create-workflow", "--domain=shop")
    assert missing.exit_code != 0 and "missing --table" in missing.output
    assert {f: (folder / f).read_text() for f in files_of(folder)} == snapshot

    monkeypatch.chdir(tmp_path)
    outside = cli("create-workflow", "--domain=shop", "--table=carts", "--column=id:int")
    assert outside.exit_code != 0 and "[config]" in outside.output and "phlo init" in outside.output


def test_init_refuses_a_non_empty_folder_and_writes_nothing(tmp_path):
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(WouldOverwriteError, match="not empty") as refused:
        init_project(folder)
    assert "pick another name" in str(refused.value)
    result = cli("init", str(folder))
    assert result.exit_code != 0
    assert "[would_overwrite]" in result.output and "Traceback" not in result.output
    assert files_of(folder) == {"notes.txt"}

    (tmp_path / "empty").mkdir()
    assert cli("init", str(tmp_path / "empty")).exit_code == 0  # an empty folder is fine
    assert files_of(tmp_path / "empty") == LAYOUT


def test_init_rejects_unknown_templates_and_bad_names(tmp_path):
    with pytest.raises(InputError, match=r"unknown template 'nope'; choose one of .*minimal"):
        init_project(tmp_path / "demo", template="nope")
    with pytest.raises(InputError, match="'9lives' is not a project name"):
        init_project(tmp_path / "9lives")
    assert list(tmp_path.iterdir()) == []


def test_templates_copy_no_runtime_files_or_secrets(tmp_path, monkeypatch):
    """A template that was run in place (as examples/glucose is) has a lakehouse, secrets,
    caches and dbt output beside its files: none of them reaches a new project."""
    templates = tmp_path / "templates"
    source = templates / "used"
    for name, data in {
        "phlo.yaml": b"lakehouse: .phlo\n",
        ".phlo/.env.local.example": b"# PHLO_POSTGRES_URL=\n",
        ".phlo/.env.local": b"PHLO_POSTGRES_URL=postgresql://u:secret@h/db\n",
        ".phlo/catalog.db": b"sqlite",
        ".phlo/warehouse/raw/t/data.parquet": b"PAR1",
        ".dagster/runs.db": b"x",
        "workflows/__pycache__/x.cpython-311.pyc": b"x",
        "workflows/transforms/dbt/target/manifest.json": b"{}",
        "workflows/transforms/dbt/logs/dbt.log": b"x",
        "workflows/transforms/dbt/models/m.sql": b"select {{ ref('x') }}",
        "data/blob.bin": bytes(range(256)),
    }.items():
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (templates / "_private").mkdir()
    monkeypatch.setattr(project, "TEMPLATES", templates)
    assert project.template_names() == ["used"]

    written = init_project(tmp_path / "new", template="used")
    assert (
        {p.as_posix() for p in written}
        == files_of(tmp_path / "new")
        == {
            "phlo.yaml",
            ".phlo/.env.local.example",
            "workflows/transforms/dbt/models/m.sql",
            "data/blob.bin",
        }
    )
    assert (tmp_path / "new" / "data" / "blob.bin").read_bytes() == bytes(range(256))
    assert (tmp_path / "new" / "workflows/transforms/dbt/models/m.sql").read_text() == (
        "select {{ ref('x') }}"
    )


def python_blocks(doc: str) -> list[str]:
    text = (Path(__file__).parents[1] / "docs" / doc).read_text()
    return [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]


def test_the_quickstarts_python_runs_in_a_fresh_project(tmp_path, monkeypatch, capsys):
    init_project(tmp_path / "demo")
    monkeypatch.chdir(tmp_path / "demo")
    defs = phlo.dagster.definitions(Path.cwd())
    (ingestion,) = [a for a in defs.assets if a.key.to_user_string() == "dlt_readings"]  # type: ignore[union-attr]
    assert ingestion.partitions_def is not None  # the day the quickstart materializes exists
    assert ingestion.partitions_def.has_partition_key(DAY)
    from workflows.ingestion.weather.readings import weather_readings  # type: ignore[import-not-found]

    assert weather_readings.run(DAY).status == "published"  # what `phlo materialize` does
    blocks = python_blocks("quickstart.md") + python_blocks("installation.md")
    assert len(blocks) == 3
    for block in blocks:
        exec(compile(block, "docs", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == ["24", "[(3,)]"]
    assert printed[2:] == ["1 of 2 files read", "[3.0]"]
