"""Publishing marts to PostgreSQL under Write-Audit-Publish (the shop project, real Dagster, a
real PostgreSQL): PostgreSQL only ever holds what main holds. A run whose promotion is blocked
or conflicts publishes nothing; a promoted run's marts are published from main after its merge,
once (a second promotion sends nothing) and never older over newer; a publish that fails after
the merge is reported, and retried by the publication_retry_sensor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pytest
from click.testing import CliRunner
from tests.dagster_support import instance

import phlo
import phlo.dagster
from dbt_support import lakehouse_of, orders_module, parsed_shop, shop
from phlo.cli import main as cli
from phlo.publishing import postgres

#: The fixtures of dbt_support and dagster_support, used by the tests below.
FIXTURES = (parsed_shop, shop, instance)
KEYS = ["dlt_orders", "stg_orders", "publish_shop"]
DAYS = ("2025-01-02", "2025-01-03")


@pytest.fixture
def url(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PHLO_POSTGRES_URL", postgres_url)
    return postgres_url


def run(
    defs: dg.Definitions,
    day: str,
    instance: dg.DagsterInstance,
    checks: list[dg.AssetChecksDefinition] | None = None,
    keys: list[str] = KEYS,
) -> dg.ExecuteInProcessResult:
    assets = {id(a): a for a in (defs.get_assets_def(k) for k in keys)}
    return dg.materialize(
        [*assets.values(), *(checks or [])],
        partition_key=day,
        instance=instance,
        resources=defs.resources,
        raise_on_error=False,
    )


def published(url: str) -> list[tuple[Any, ...]] | None:
    """The rows of marts.category_totals in PostgreSQL (None: not published)."""
    with psycopg.connect(url) as con:
        if con.execute("SELECT to_regclass('marts.category_totals')").fetchone() == (None,):
            return None
        return sorted(con.execute("SELECT category, orders FROM marts.category_totals").fetchall())


def table_oid(url: str) -> int:
    """Changes with every full publish (a new table is swapped in)."""
    with psycopg.connect(url) as con:
        row = con.execute("SELECT 'marts.category_totals'::regclass::oid").fetchone()
    assert row is not None
    return int(row[0])


def on_main(shop: Path) -> list[tuple[Any, ...]]:
    data = lakehouse_of(shop).table("marts.mrt_category_totals").to_arrow()
    return sorted((r["category"], r["orders"]) for r in data.to_pylist())


def main_snapshot(shop: Path) -> int | None:
    return lakehouse_of(shop).table("marts.mrt_category_totals").current_snapshot_id


def recorded_snapshot(url: str) -> int:
    with psycopg.connect(url) as con:
        row = con.execute(
            "SELECT snapshot_id FROM marts._phlo_publications WHERE table_name = 'category_totals'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def tag(instance: dg.DagsterInstance, run_id: str, name: str) -> str | None:
    found = instance.get_run_by_id(run_id)
    assert found is not None
    return found.tags.get(name)


@dg.asset_check(asset="publish_shop", blocking=True)
def totals_signed_off() -> dg.AssetCheckResult:
    """A blocking check after the publishing asset that fails: the run must not promote."""
    return dg.AssetCheckResult(passed=False, description="not signed off")


def test_a_run_publishes_to_postgres_only_when_promoted_from_main(
    shop: Path, instance: dg.DagsterInstance, url: str
) -> None:
    defs = phlo.dagster.definitions(shop)
    first = run(defs, DAYS[0], instance)
    assert first.success
    assert published(url) is None  # the marts are on the run's branch only
    event = next(
        e.materialization
        for e in first.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey("publish_shop")
    )
    assert event.metadata["published"].value is False
    assert "when the run is promoted" in str(event.metadata["reason"].value)

    outcome = phlo.dagster.promote(instance, first.run_id)
    assert outcome.status == "published"
    assert published(url) == on_main(shop)
    orders = orders_module(shop).orders_of(DAYS[0])
    assert published(url) == sorted(
        (c, sum(1 for o in orders if o["category"] == c)) for c in "abc"
    )
    assert outcome.published["marts.category_totals"].mode == "full"
    assert recorded_snapshot(url) == main_snapshot(shop)
    assert tag(instance, first.run_id, "phlo/publication") == "published"

    # Promoting again sends nothing: the table is the one published first.
    oid = table_oid(url)
    again = phlo.dagster.promote(instance, first.run_id)
    assert again.status == "already_published"
    assert again.published["marts.category_totals"].mode == "unchanged"
    assert table_oid(url) == oid

    # The publishing asset alone writes nothing to a branch: it publishes main at once.
    with psycopg.connect(url) as con:
        con.execute("DROP TABLE marts.category_totals")
    alone = run(defs, DAYS[0], instance, keys=["publish_shop"])
    assert alone.success
    assert published(url) == on_main(shop)


def test_a_blocked_run_leaves_postgres_unchanged(
    shop: Path, instance: dg.DagsterInstance, url: str
) -> None:
    defs = phlo.dagster.definitions(shop)
    good = run(defs, DAYS[0], instance)
    assert phlo.dagster.promote(instance, good.run_id).status == "published"
    before, oid = published(url), table_oid(url)

    blocked = run(defs, DAYS[1], instance, checks=[totals_signed_off])
    assert not blocked.success  # the publishing asset ran, its blocking check failed
    outcome = phlo.dagster.promote(instance, blocked.run_id)
    assert outcome.status == "blocked" and "totals_signed_off" in outcome.reason
    assert published(url) == before == on_main(shop)
    assert table_oid(url) == oid


def test_a_conflicting_run_leaves_postgres_unchanged(
    shop: Path, instance: dg.DagsterInstance, url: str
) -> None:
    defs = phlo.dagster.definitions(shop)
    first = run(defs, DAYS[0], instance)
    second = run(defs, DAYS[1], instance)  # forked from the same main: its totals conflict
    assert first.success and second.success
    assert published(url) is None
    assert phlo.dagster.promote(instance, first.run_id).status == "published"
    before = published(url)

    outcome = phlo.dagster.promote(instance, second.run_id)
    assert outcome.status == "conflict"
    assert published(url) == before == on_main(shop)
    assert tag(instance, second.run_id, "phlo/publication") == "withheld"


def test_a_publish_interrupted_after_the_merge_is_retried_once_and_never_older(
    shop: Path, instance: dg.DagsterInstance, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = phlo.dagster.definitions(shop)
    first = run(defs, DAYS[0], instance)
    real_connect = postgres.connect

    def crash(url: str) -> Any:
        raise OSError("the process died after the merge")

    monkeypatch.setattr(postgres, "connect", crash)
    with pytest.raises(OSError, match="died after the merge"):
        phlo.dagster.promote(instance, first.run_id)
    monkeypatch.setattr(postgres, "connect", real_connect)
    # The merge landed, PostgreSQL has nothing yet, and the run waits for the retry.
    assert on_main(shop) and published(url) is None
    assert tag(instance, first.run_id, "phlo/publication") == "pending"

    retry = next(s for s in defs.sensors or [] if s.name == "publication_retry_sensor")
    assert isinstance(retry, dg.SensorDefinition)
    retry(dg.build_sensor_context(instance=instance))
    assert published(url) == on_main(shop)
    assert tag(instance, first.run_id, "phlo/publication") == "published"
    assert tag(instance, first.run_id, "phlo/promotion") == "published"

    # A newer run publishes main's newer totals; promoting the first run again sends nothing
    # (it would be the older snapshot), and the retry sensor has nothing left to do.
    second = run(defs, DAYS[1], instance)
    assert phlo.dagster.promote(instance, second.run_id).status == "published"
    newest, oid = published(url), table_oid(url)
    assert newest == on_main(shop) and recorded_snapshot(url) == main_snapshot(shop)
    again = phlo.dagster.promote(instance, first.run_id)
    assert again.published["marts.category_totals"].mode == "unchanged"
    retry(dg.build_sensor_context(instance=instance))
    assert published(url) == newest and table_oid(url) == oid


def test_a_failed_publish_after_the_merge_is_reported_and_retried(
    shop: Path, instance: dg.DagsterInstance, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = phlo.dagster.definitions(shop)
    first = run(defs, DAYS[0], instance)
    # The promoting process (the daemon) points at a database that does not exist.
    monkeypatch.setenv("PHLO_POSTGRES_URL", url.rsplit("/", 1)[0] + "/no_such_database")
    outcome = phlo.dagster.promote(instance, first.run_id)
    assert outcome.status == "not_published"
    assert "merged into main, but not published to PostgreSQL" in outcome.reason
    assert "cannot connect to PostgreSQL" in outcome.reason
    assert on_main(shop)  # the merge landed
    assert tag(instance, first.run_id, "phlo/promotion") == "published"
    assert tag(instance, first.run_id, "phlo/publication") == "failed"

    monkeypatch.setenv("PHLO_POSTGRES_URL", url)
    again = phlo.dagster.promote(instance, first.run_id)
    assert again.status == "already_published"
    assert published(url) == on_main(shop)
    assert tag(instance, first.run_id, "phlo/publication") == "published"


def test_phlo_materialize_prints_what_promotion_published_to_postgres(
    shop: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`phlo materialize` says which marts went to PostgreSQL, from which table, and how."""
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    selected = [arg for key in KEYS for arg in ("--select", key)]
    args = ["--project", str(shop), "materialize", *selected, "--partition", DAYS[0]]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = len(on_main(shop))
    line = f"published marts.mrt_category_totals to PostgreSQL marts.category_totals: {rows} rows"
    assert f"{line} (full)" in result.output, result.output

    result = CliRunner().invoke(cli, [*args[:-1], DAYS[1], "--json"])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)["runs"]
    sent = report["postgres"]["marts.category_totals"]
    assert sent["source"] == "marts.mrt_category_totals"
    assert sent["snapshot_id"] == recorded_snapshot(url) == main_snapshot(shop)
    assert sent["mode"] in ("full", "incremental") and sent["rows"] > 0
    assert published(url) == on_main(shop)
