"""The dbt project of a phlo project through Dagster: asset graph and groups, dbt tests as
checks with phlo's names, metadata and severity, Write-Audit-Publish over ingestion + dbt, an
incremental model across runs, and publishing.yaml to a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psycopg
import pytest

import phlo
import phlo.dagster
from dbt_support import DBT, lakehouse_of, orders_module, parsed_shop, shop
from phlo.errors import NoSuchTableError

LABELS = {"a": "Apparel", "b": "Books", "c": "Cameras"}
GOOD_DAYS = ("2025-01-02", "2025-01-03")

#: The fixtures of dbt_support, used by the tests below.
FIXTURES = (parsed_shop, shop)


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


def run(
    defs: dg.Definitions, keys: list[str], day: str, instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    assets = {id(a): a for a in (defs.get_assets_def(k) for k in keys)}
    return dg.materialize(
        list(assets.values()),
        partition_key=day,
        instance=instance,
        resources=defs.resources,
        raise_on_error=False,
    )


def expected_orders(project: Path, days: tuple[str, ...]) -> list[dict[str, object]]:
    """The plain-Python model of fct_orders after building `days`."""
    orders = orders_module(project)
    return sorted(
        (
            {"id": o["id"], "category": o["category"], "amount": o["amount"], "built_for": day}
            for day in days
            for o in orders.orders_of(day)
        ),
        key=lambda r: int(r["id"]),  # type: ignore[call-overload]
    )


def table_rows(project: Path, name: str, columns: list[str], ref: str = "main") -> list[dict]:
    data = lakehouse_of(project).table(name, ref).to_arrow().select(columns).to_pylist()
    return sorted(data, key=lambda r: tuple(str(r[c]) for c in columns))


def test_asset_graph_groups_and_check_specs(shop: Path) -> None:
    defs = phlo.dagster.definitions(shop)
    graph = defs.resolve_asset_graph()
    groups = {k.to_user_string(): graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {
        "dlt_orders": "shop",
        "categories": "seeds",  # a seed without meta or layer folder
        "brz_orders": "bronze",
        "stg_orders": "silver",
        "fct_orders": "gold",
        "mrt_category_totals": "marts",
        "publish_shop": "publishing",
    }
    parents = {
        k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
        for k in graph.get_all_asset_keys()
    }
    # The dbt source raw.orders is the ingestion's table: models depend on its asset.
    assert parents["brz_orders"] == ["dlt_orders"]
    assert parents["stg_orders"] == ["brz_orders", "categories"]
    assert parents["mrt_category_totals"] == ["fct_orders"]
    assert parents["publish_shop"] == ["mrt_category_totals"]
    specs = {
        (key.asset_key.to_user_string(), key.name): graph.get_check_spec(key).blocking
        for key in graph.asset_check_keys
    }
    assert specs == {
        ("dlt_orders", "pandera_contract"): True,
        # Two not_null tests on stg_orders: the column tells them apart.
        ("stg_orders", "dbt__not_null__stg_orders__id"): True,
        ("stg_orders", "dbt__not_null__stg_orders__label"): True,
        ("stg_orders", "dbt__unique__stg_orders"): True,
        ("stg_orders", "dbt__relationships__stg_orders"): True,
        ("fct_orders", "dbt__unique__fct_orders"): True,
        ("fct_orders", "dbt__accepted_values__fct_orders"): False,  # warns
        ("mrt_category_totals", "dbt__not_null__mrt_category_totals"): True,
        # A singular test tagged `warn`.
        ("mrt_category_totals", "dbt__assert_amounts_positive__mrt_category_totals"): False,
    }
    dg.Definitions.validate_loadable(defs)


def test_failing_blocking_dbt_test_publishes_nothing(
    shop: Path, instance: dg.DagsterInstance
) -> None:
    defs = phlo.dagster.definitions(shop)
    bad_day = orders_module(shop).BAD_DAY
    result = run(defs, ["dlt_orders", "stg_orders"], bad_day, instance)
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    failed = checks["dbt__not_null__stg_orders__label"]
    assert not failed.passed and failed.blocking
    assert failed.severity == dg.AssetCheckSeverity.ERROR
    metadata = {k: v.value for k, v in failed.metadata.items()}
    assert metadata["source"] == "dbt"
    assert metadata["failed_count"] == 1
    assert metadata["total_count"] == 4
    assert metadata["partition_key"] == bad_day
    assert "is null" in metadata["query_or_sql"]
    assert metadata["sample"] == [{"label": None}]
    assert checks["dbt__not_null__stg_orders__id"].passed
    assert not checks["dbt__relationships__stg_orders"].passed

    outcome = phlo.dagster.promote(instance, result.run_id)
    assert outcome.status == "blocked"
    assert "dbt__not_null__stg_orders__label" in outcome.reason
    lh = lakehouse_of(shop)
    # Neither the ingested orders nor the models reached main...
    assert lh.table("raw.orders").to_arrow().num_rows == 0
    with pytest.raises(NoSuchTableError):
        lh.table("silver.stg_orders")
    # ...the run's branch holds both, and the check's repro SQL finds the failing row there.
    branch = f"pipeline-run-{result.run_id}"
    assert lh.table("raw.orders", branch).to_arrow().num_rows == 4
    failing = lh.sql(metadata["repro_sql"].replace("select label", "select id"), ref=branch)
    assert failing.fetchall() == [(int(orders_module(shop).orders_of(bad_day)[0]["id"]),)]


def test_passing_run_publishes_ingestion_and_models_in_one_merge(
    shop: Path, instance: dg.DagsterInstance
) -> None:
    defs = phlo.dagster.definitions(shop)
    keys = ["dlt_orders", "stg_orders"]  # the dbt asset brings every model along
    first = run(defs, keys, GOOD_DAYS[0], instance)
    assert first.success
    assert all(e.passed for e in first.get_asset_check_evaluations())
    materialized = {
        e.materialization.asset_key.to_user_string()
        for e in first.get_asset_materialization_events()
    }
    assert materialized == {
        "dlt_orders",
        "categories",
        "brz_orders",
        "stg_orders",
        "fct_orders",
        "mrt_category_totals",
    }
    lh = lakehouse_of(shop)
    with pytest.raises(NoSuchTableError):  # nothing on main before promotion
        lh.table("gold.fct_orders")
    promotion = phlo.dagster.promote(instance, first.run_id)
    assert promotion.status == "published"
    assert promotion.promotion is not None
    assert {"raw.orders", "silver.stg_orders", "gold.fct_orders"} <= set(promotion.promotion.tables)
    stg = table_rows(shop, "silver.stg_orders", ["id", "label"])
    orders = orders_module(shop).orders_of(GOOD_DAYS[0])
    assert stg == sorted(
        ({"id": o["id"], "label": LABELS[str(o["category"])]} for o in orders),
        key=lambda r: tuple(str(v) for v in r.values()),
    )

    # A model and its test written after the definitions were loaded (a code location not
    # reloaded yet): the run builds and publishes it, and reports the assets it knows.
    marts = shop / DBT / "models" / "marts"
    (marts / "mrt_days.sql").write_text(
        "{{ config(materialized='table') }}\nselect distinct order_date from {{ ref('fct_orders') }}"
    )
    (marts / "mrt_days.yml").write_text(
        "version: 2\nmodels:\n  - name: mrt_days\n"
        "    columns:\n      - name: order_date\n        data_tests: [not_null]\n"
    )

    # A second day: the incremental model adds only the new day's rows, as one append.
    second = run(defs, keys, GOOD_DAYS[1], instance)
    assert second.success
    assert phlo.dagster.promote(instance, second.run_id).status == "published"
    assert lh.table("marts.mrt_days").to_arrow().num_rows == len(GOOD_DAYS)
    fct = lh.table("gold.fct_orders")
    columns = ["id", "category", "amount", "built_for"]
    assert table_rows(shop, "gold.fct_orders", columns) == sorted(
        expected_orders(shop, GOOD_DAYS), key=lambda r: tuple(str(r[c]) for c in columns)
    )
    last = fct.history()[-1]
    assert last.summary["added-records"] == str(len(orders_module(shop).orders_of(GOOD_DAYS[1])))
    assert last.summary.get("deleted-records", "0") == "0"
    # The table model was replaced: the totals cover both days.
    totals = {
        r["category"]: r["orders"]
        for r in lh.table("marts.mrt_category_totals").to_arrow().to_pylist()
    }
    every = expected_orders(shop, GOOD_DAYS)
    assert totals == {c: sum(1 for r in every if r["category"] == c) for c in "abc"}
    # The materialization says what was written.
    fct_event = next(
        e.materialization
        for e in second.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey("fct_orders")
    )
    assert fct_event.metadata["phlo/write"].value == "merged"
    assert fct_event.metadata["dagster/row_count"].value == 4


def test_publishing_yaml_publishes_the_marts(
    shop: Path, instance: dg.DagsterInstance, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHLO_POSTGRES_URL", postgres_url)
    defs = phlo.dagster.definitions(shop)
    result = run(defs, ["dlt_orders", "stg_orders", "publish_shop"], GOOD_DAYS[0], instance)
    assert result.success
    # Published from main once the run is promoted (tests/test_dagster_publishing.py).
    promotion = phlo.dagster.promote(instance, result.run_id)
    assert promotion.status == "published"
    with psycopg.connect(postgres_url) as con:
        published = sorted(
            con.execute("SELECT category, orders FROM marts.category_totals").fetchall()
        )
        (key,) = con.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'marts.category_totals'::regclass "
            "AND i.indisprimary"
        ).fetchall()
    orders = orders_module(shop).orders_of(GOOD_DAYS[0])
    assert published == sorted((c, sum(1 for o in orders if o["category"] == c)) for c in "abc")
    assert key == ("category",)
    assert promotion.published["marts.category_totals"].rows == 3


def test_optional_publishing_skips_without_a_connection_and_a_required_one_fails(
    shop: Path, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PHLO_POSTGRES_URL", raising=False)
    keys = ["dlt_orders", "stg_orders", "publish_shop"]
    required = run(phlo.dagster.definitions(shop), keys, GOOD_DAYS[0], instance)
    assert not required.success  # no connection: the required publication fails the run

    file = shop / "publishing.yaml"
    file.write_text(
        file.read_text().replace("target_schema: marts", "target_schema: marts\n    optional: true")
    )
    skipped = run(phlo.dagster.definitions(shop), keys, GOOD_DAYS[0], instance)
    assert skipped.success
    event = next(
        e.materialization
        for e in skipped.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey("publish_shop")
    )
    assert event.metadata["published"].value is False
    assert "PHLO_POSTGRES_URL" in event.metadata["reason"].value
