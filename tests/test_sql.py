"""`Lakehouse.sql`: DuckDB over the tables of a ref, checked against a plain model of the rows."""

from __future__ import annotations

import datetime as dt
import gc
import time
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

import phlo
import phlo.sql
from conftest import make_events
from phlo.errors import NoSuchTableError, SqlError


def rows(lh: phlo.Lakehouse, query: str, **kwargs: object) -> list[tuple[object, ...]]:
    return sorted(lh.sql(query, **kwargs).fetchall())


def model_of(table: pa.Table) -> dict[int, tuple[str, float]]:
    return {r["id"]: (r["category"], r["value"]) for r in table.to_pylist()}


def test_reads_each_ref_as_it_is(lh, events_table):
    events_table.append(make_events(0, 30))
    lh.create_branch("dev")
    lh.table("raw.events", "dev").append(make_events(30, 12))
    assert rows(lh, "SELECT count(*), sum(id) FROM raw.events") == [(30, sum(range(30)))]
    assert rows(lh, "SELECT count(*), sum(id) FROM raw.events", ref="dev") == [(42, sum(range(42)))]


def test_a_result_keeps_reading_its_own_ref_while_other_queries_run(lh, events_table):
    # Queries share one DuckDB database; each one's views must stay its own.
    events_table.append(make_events(0, 30))
    lh.create_branch("dev")
    lh.table("raw.events", "dev").append(make_events(30, 12))
    on_main = lh.sql("SELECT count(*) FROM raw.events")
    on_dev = lh.sql("SELECT count(*) FROM raw.events", ref="dev")
    assert on_main.fetchall() == [(30,)]
    assert on_dev.fetchall() == [(42,)]
    assert on_main.filter("true").fetchall() == [(30,)]


def query_catalogs() -> list[str]:
    found = phlo.sql._shared_database().sql(
        "SELECT database_name FROM duckdb_databases() WHERE database_name LIKE '__phlo_query_%'"
    )
    return [name for (name,) in found.fetchall()]


def test_a_query_catalog_is_dropped_once_nothing_reads_it(lh, events_table):
    events_table.append(make_events(0, 5))
    gc.collect()
    before = query_catalogs()
    relation = lh.sql("SELECT id FROM raw.events")
    derived = relation.filter("id > 2")
    del relation
    gc.collect()
    assert len(query_catalogs()) == len(before) + 1
    assert sorted(derived.fetchall()) == [(3,), (4,)]
    del derived
    gc.collect()
    assert query_catalogs() == before


def test_reads_a_table_as_of_a_time(lh, events_table):
    events_table.append(make_events(0, 10))
    time.sleep(0.01)
    then = dt.datetime.now(dt.UTC)
    time.sleep(0.01)
    events_table.append(make_events(10, 5))
    assert rows(lh, "SELECT max(id) FROM raw.events", as_of=then) == [(9,)]
    assert rows(lh, "SELECT max(id) FROM raw.events") == [(14,)]


def test_a_merge_replaced_rows_never_show(lh, events_table):
    model = model_of(make_events(0, 20))
    events_table.append(make_events(0, 20))
    update = pa.table(
        {
            "id": pa.array([3, 7, 25], pa.int64()),
            "ts": pa.array(
                [dt.datetime(2024, 1, 2, tzinfo=dt.UTC)] * 3, events_table.schema.field("ts").type
            ),
            "category": ["z", "z", "z"],
            "value": [-1.0, -2.0, -3.0],
        },
        schema=events_table.schema,
    )
    events_table.merge(update, "id")
    model.update(model_of(update))
    got = rows(lh, "SELECT id, category, value FROM raw.events")
    assert got == sorted((k, c, v) for k, (c, v) in model.items())


def test_joins_tables_of_two_namespaces_with_quoted_names(lh, events_table):
    events_table.append(make_events(0, 6))
    lh.create_namespace("marts")
    lh.create_table("marts.order", {"id": pa.int64(), "label": pa.string()}).append(
        pa.table({"id": pa.array([1, 4], pa.int64()), "label": ["one", "four"]})
    )
    got = rows(
        lh,
        'SELECT e.id, o.label FROM raw.events e JOIN marts."order" o ON e.id = o.id',
    )
    assert got == [(1, "one"), (4, "four")]


def test_an_empty_table_has_its_columns_and_no_rows(lh, events_table):
    relation = lh.sql("SELECT * FROM raw.events")
    assert relation.columns == ["id", "ts", "category", "value"]
    assert relation.fetchall() == []


def test_a_table_whose_rows_were_all_deleted_is_empty(lh, events_table):
    events_table.append(make_events(0, 6))
    events_table.delete(("id", ">=", 0))
    assert rows(lh, "SELECT count(*) FROM raw.events") == [(0,)]


def test_a_column_renamed_by_pyiceberg_reads_by_field_id(lh, events_table):
    events_table.append(make_events(0, 9))
    catalog = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
    catalog.load_table("raw.events").update_schema().rename_column("value", "amount").commit()
    later = make_events(9, 3).rename_columns(["id", "ts", "category", "amount"])
    lh.table("raw.events").append(later)
    written = make_events(0, 9).to_pylist() + make_events(9, 3).to_pylist()
    expected = sorted((r["id"], r["value"]) for r in written)
    # Read twice in one query (a self-join): the fallback scan is read once per use.
    got = rows(lh, "SELECT a.id, b.amount FROM raw.events a JOIN raw.events b USING (id)")
    assert got == expected


def test_only_the_tables_a_query_names_are_opened(lh, events_table):
    events_table.append(make_events(0, 4))
    other = lh.create_table("raw.other", {"id": pa.int64()})
    other.append(pa.table({"id": pa.array([1], pa.int64())}))
    # Break the other table: opening it now fails.
    Path(other.metadata_location.removeprefix("file://")).unlink()
    assert rows(lh, "SELECT count(*) FROM raw.events") == [(4,)]


def test_results_convert_to_arrow_polars_and_pandas(lh, events_table):
    events_table.append(make_events(0, 5))
    relation = lh.sql("SELECT id FROM raw.events ORDER BY id")
    assert relation.to_arrow_table().column("id").to_pylist() == [0, 1, 2, 3, 4]
    assert relation.pl()["id"].to_list() == [0, 1, 2, 3, 4]
    assert relation.df()["id"].tolist() == [0, 1, 2, 3, 4]


def test_a_missing_table_is_named(lh, events_table):
    with pytest.raises(NoSuchTableError, match=r"raw\.nope"):
        lh.sql("SELECT * FROM raw.nope")
    with pytest.raises(NoSuchTableError, match="events"):
        lh.sql("SELECT * FROM events")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELEC 1", "syntax error"),
        ("SELECT nope FROM raw.events", '"nope" not found'),
        ("CREATE TABLE raw.x AS SELECT 1", "runs queries"),
    ],
)
def test_bad_sql_is_a_typed_error(lh, events_table, query, message):
    with pytest.raises(SqlError, match=message) as info:
        lh.sql(query)
    assert info.value.code == "sql"
    assert query in str(info.value)


def test_the_sql_command_prints_a_table_or_json_lines(lh, events_table):
    import json

    from click.testing import CliRunner

    from phlo.cli import main

    events_table.append(make_events(0, 3))
    lh.create_branch("dev")
    lh.table("raw.events", "dev").append(make_events(3, 2))
    query = "SELECT id, category FROM raw.events ORDER BY id"
    out = CliRunner().invoke(main, ["--root", str(lh.root), "sql", query, "--ref", "dev", "--json"])
    assert out.exit_code == 0, out.output
    assert [json.loads(line)["id"] for line in out.output.splitlines()] == [0, 1, 2, 3, 4]
    out = CliRunner().invoke(
        main, ["--root", str(lh.root), "sql", "SELECT count(*) AS n FROM raw.events"]
    )
    assert out.exit_code == 0
    assert [line.strip("│ ") for line in out.output.splitlines()[1:5:3]] == ["n", "3"]
    out = CliRunner().invoke(main, ["--root", str(lh.root), "sql", "SELECT * FROM raw.nope"])
    assert out.exit_code == 4 and "[no_such_table]" in out.output
