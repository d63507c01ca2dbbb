"""`phlo.transforms.build` without Dagster: what lands on the ref, and bad input (a broken
model, a missing source table, a bad publishing.yaml) as typed errors naming the model."""

from __future__ import annotations

import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from dbt_support import DBT, INTERRUPTING_MODEL, lakehouse_of, orders_module, parsed_shop, shop
from phlo.dagster.publishing import read_publishing
from phlo.errors import ConfigError, NoSuchTableError, SchemaError, SqlError
from phlo.transforms import (
    DbtBuild,
    build,
    find_dbt_project,
    trino_branch_catalog,
    trino_profile,
)

DAY = "2025-01-02"

#: The fixtures of dbt_support, used by the tests below.
FIXTURES = (parsed_shop, shop)


def ingest(project: Path, day: str = DAY) -> None:
    orders = orders_module(project)
    orders.shop_orders.run(partition_date=day, lakehouse=lakehouse_of(project))


def test_table_model_is_replaced_atomically_on_the_ref(shop: Path) -> None:
    ingest(shop)
    lh = lakehouse_of(shop)
    dbt = find_dbt_project(shop)
    assert dbt is not None
    lh.create_branch("dev")
    first = build(dbt, lh, "dev", run_id="r1", partition_date=DAY)
    assert first.errors == []
    assert first.nodes["model.shop.stg_orders"].write.outcome == "created"  # type: ignore[union-attr]
    # The seed is a table of the lakehouse too; the view model stays in DuckDB.
    assert lh.table("reference.categories", "dev").to_arrow().num_rows == 3
    assert first.nodes["model.shop.brz_orders"].write is None
    with pytest.raises(NoSuchTableError):
        lh.table("silver.stg_orders")  # main does not see the branch's builds
    lh.merge("dev")
    ingest(shop, "2025-01-03")
    lh.create_branch("dev2")
    second = build(dbt, lh, "dev2", run_id="r2", select=["model.shop.stg_orders"])
    stg = second.nodes["model.shop.stg_orders"].write
    assert stg is not None and (stg.outcome, stg.rows) == ("replaced", 8)
    ids = sorted(lh.table("silver.stg_orders", "dev2").to_arrow().column("id").to_pylist())
    expected = orders_module(shop).orders_of(DAY) + orders_module(shop).orders_of("2025-01-03")
    assert ids == sorted(int(o["id"]) for o in expected)  # type: ignore[call-overload]
    # Only the selected model (and the view it reads) ran.
    assert set(second.nodes) == {"model.shop.stg_orders", "model.shop.brz_orders"}
    # One change on the ref (the merge of the write's private transaction), and main still
    # has the first build until dev2 is merged.
    entries = [e for e in lh.log("dev2", 50) if "silver.stg_orders" in e.tables]
    assert len(entries) == 1
    assert lh.table("silver.stg_orders").to_arrow().num_rows == 4


def test_broken_model_sql_is_a_sql_error_naming_the_model(shop: Path) -> None:
    ingest(shop)
    model = shop / DBT / "models" / "silver" / "stg_orders.sql"
    model.write_text("select id, from_nowhere(( from {{ ref('brz_orders') }}")
    lh = lakehouse_of(shop)
    dbt = find_dbt_project(shop)
    assert dbt is not None
    result = build(dbt, lh, "main", run_id="bad", partition_date=DAY)
    with pytest.raises(SqlError, match=r"dbt model stg_orders \(models/silver/stg_orders.sql\)"):
        result.raise_for_errors()
    assert result.nodes["model.shop.stg_orders"].status == "error"
    # Its children were skipped and nothing of them reached the lakehouse.
    assert result.nodes["model.shop.fct_orders"].status == "skipped"
    with pytest.raises(NoSuchTableError):
        lh.table("silver.stg_orders")
    assert result.workdir is not None and (result.workdir / "phlo.duckdb").exists()


def test_missing_source_table_is_a_no_such_table_error_naming_the_model(shop: Path) -> None:
    lh = lakehouse_of(shop)  # nothing ingested: raw.orders does not exist
    dbt = find_dbt_project(shop)
    assert dbt is not None
    result = build(dbt, lh, "main", run_id="nosource")
    with pytest.raises(NoSuchTableError, match=r"dbt model brz_orders .* does not exist at main"):
        result.raise_for_errors()
    assert result.nodes["seed.shop.categories"].status == "success"


def test_model_whose_column_changed_type_is_a_schema_error_naming_it(shop: Path) -> None:
    ingest(shop)
    lh = lakehouse_of(shop)
    dbt = find_dbt_project(shop)
    assert dbt is not None
    build(dbt, lh, "main", run_id="first").raise_for_errors()
    before = lh.table("silver.stg_orders").to_arrow()
    model = shop / DBT / "models" / "silver" / "stg_orders.sql"
    model.write_text(model.read_text().replace("select o.id,", "select 'order-' || o.id as id,"))
    changed = find_dbt_project(shop)
    assert changed is not None
    result = build(changed, lh, "main", run_id="second", select=["model.shop.stg_orders"])
    with pytest.raises(SchemaError, match="column id") as caught:
        result.raise_for_errors()
    assert any("stg_orders (models/silver/stg_orders.sql)" in n for n in caught.value.__notes__)
    assert lh.table("silver.stg_orders").to_arrow().equals(before)  # unchanged


def test_unparsable_project_is_a_config_error(shop: Path) -> None:
    (shop / DBT / "models" / "silver" / "stg_orders.sql").write_text("{{ ref('nope') }}")
    with pytest.raises(ConfigError, match="nope"):
        find_dbt_project(shop)


def test_bad_publishing_yaml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "publishing.yaml").write_text(
        yaml.safe_dump({"publishing": {"shop": {"tables": {"totals": "no_namespace"}}}})
    )
    with pytest.raises(ConfigError, match=r"publishing.shop.tables must map"):
        read_publishing(tmp_path)
    (tmp_path / "publishing.yaml").write_text(
        yaml.safe_dump({"publishing": {"shop": {"tables": {"t": "marts.t"}, "tabels": 1}}})
    )
    with pytest.raises(ConfigError, match=r"unknown keys \['tabels'\]"):
        read_publishing(tmp_path)


def test_trino_profile_points_at_the_runs_branch_catalog() -> None:
    statement = trino_branch_catalog(
        "run_42",
        branch="pipeline-run-42",
        nessie_uri="http://nessie:19120/api/v2",
        warehouse="s3://lake/",
    )
    assert "\"iceberg.nessie-catalog.ref\" = 'pipeline-run-42'" in statement
    profile = trino_profile(host="trino", catalog="run_42")
    assert profile["phlo"]["outputs"]["scaled"]["database"] == "run_42"
    assert profile["phlo"]["outputs"]["scaled"]["type"] == "trino"


# --- dbt runs in phlo's process, on a manifest parsed once per version of the project ---------


def test_a_build_follows_the_projects_files_and_environment_between_builds(
    shop: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The parse a process keeps is not reused once a file or an environment variable the
    project reads changed; and dbt prints nothing (its events reach phlo's errors and log)."""
    ingest(shop)
    lh = lakehouse_of(shop)
    model = shop / DBT / "models" / "marts" / "mrt_labels.sql"
    model.write_text(
        "{{ config(materialized=env_var('PHLO_TEST_MATERIALIZED', 'view')) }}\n"
        "select distinct label from {{ ref('stg_orders') }}"
    )
    monkeypatch.delenv("PHLO_TEST_MATERIALIZED", raising=False)
    dbt = find_dbt_project(shop)
    assert dbt is not None
    uid = "model.shop.mrt_labels"
    first = build(dbt, lh, "main", run_id="view", partition_date=DAY)
    assert first.errors == [] and first.nodes[uid].status == "success"
    assert first.nodes[uid].write is None  # a view stays in DuckDB
    # The model's config reads the environment when the project is parsed.
    monkeypatch.setenv("PHLO_TEST_MATERIALIZED", "table")
    second = build(dbt, lh, "main", run_id="table", partition_date=DAY)
    assert second.nodes[uid].write is not None
    assert second.nodes[uid].write.outcome == "created"
    # A file that changed is parsed again, though the same DbtProject is passed.
    model.write_text("{{ config(materialized='table') }}\nselect 1 as one")
    third = build(dbt, lh, "main", run_id="changed", select=[uid])
    assert third.errors == []
    assert lh.table("marts.mrt_labels").to_arrow().column("one").to_pylist() == [1]
    out, err = capfd.readouterr()
    assert "dbt" not in out + err, out + err


def test_builds_of_two_threads_at_once_each_build_their_own_project(
    parsed_shop: Path, tmp_path: Path
) -> None:
    """dbt's state is the process's: builds in threads (Dagster runs steps in threads or
    processes) take turns, each on its own DuckDB file and lakehouse."""
    projects = []
    for name in ("one", "two"):
        folder = tmp_path / name / "shop"
        shutil.copytree(parsed_shop, folder)
        ingest(folder, DAY if name == "one" else "2025-01-03")
        sys.modules.pop("workflows.ingestion.shop.orders", None)
        projects.append(folder)

    def run(folder: Path) -> DbtBuild:
        dbt = find_dbt_project(folder)
        assert dbt is not None
        return build(dbt, lakehouse_of(folder), "main", run_id=folder.parent.name)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, projects))
    for folder, result in zip(projects, results, strict=True):
        assert result.errors == [], result.errors
        assert all(check.passed for check in result.checks.values())
        built_for = lakehouse_of(folder).table("gold.fct_orders").to_arrow().column("order_date")
        day = DAY if folder.parent.name == "one" else "2025-01-03"
        assert {str(d) for d in built_for.to_pylist()} == {day}


def test_an_interrupt_during_a_build_stays_an_interrupt(shop: Path) -> None:
    """Ctrl-C while dbt runs (a notebook's interrupt; here a Python model sends the process
    SIGINT) reaches the caller as KeyboardInterrupt, not as a ConfigError about the project;
    dbt's lock and the working folder are released, and the next build runs."""
    ingest(shop)
    models = shop / DBT / "models" / "marts"
    (models / "interrupting.py").write_text(INTERRUPTING_MODEL)
    dbt = find_dbt_project(shop)
    assert dbt is not None
    lh, here = lakehouse_of(shop), Path.cwd()
    with pytest.raises(KeyboardInterrupt):
        build(dbt, lh, "main", run_id="interrupted", select=["model.shop.interrupting"])
    assert Path.cwd() == here
    (models / "interrupting.py").unlink()
    dbt = find_dbt_project(shop)
    assert dbt is not None
    again = build(dbt, lh, "main", run_id="again", partition_date=DAY)
    assert again.errors == [] and again.nodes["model.shop.fct_orders"].status == "success"
