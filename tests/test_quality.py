"""`@phlo_quality`: every check on clean and violating data with exact counts (pandas, the
original approach, is the oracle), samples, thresholds and severities, partition scoping
(files scanned), repro SQL run in DuckDB, quoting, all-null columns, empty partitions,
missing columns and bad settings."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pandera.pandas as pandera
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import phlo
from phlo.errors import ConfigError, InputError
from phlo.quality import (
    AcceptedValuesCheck,
    CountCheck,
    CustomSQLCheck,
    FreshnessCheck,
    NullCheck,
    PatternCheck,
    RangeCheck,
    ReconciliationCheck,
    RowCheck,
    SchemaCheck,
    UniqueCheck,
    duckdb_connection,
    phlo_quality,
)

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("value", pa.float64()),
        pa.field("cat", pa.string()),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("_phlo_partition_date", pa.date32()),
        pa.field("_phlo_row_id", pa.string()),
    ]
)
DAYS = [dt.date(2024, 1, d) for d in (1, 2, 3)]
REFERENCE = dt.datetime(2024, 1, 4, tzinfo=dt.UTC)


def clean_rows(day: dt.date, start: int, n: int) -> list[dict[str, Any]]:
    at = dt.datetime.combine(day, dt.time(), dt.UTC)
    return [
        {
            "id": start + i,
            "value": float(i % 100),
            "cat": ("a", "b")[i % 2],
            "ts": at + dt.timedelta(minutes=i),
            "_phlo_partition_date": day,
            "_phlo_row_id": f"{day}-{start + i}",
        }
        for i in range(n)
    ]


def dirty_rows(day: dt.date, start: int, n: int) -> list[dict[str, Any]]:
    """Clean rows, then: ids repeat every 7th row, null every 11th; values above 100 every
    5th, null every 13th, NaN every 17th; categories outside a/b every 6th, null every 9th."""
    rows = clean_rows(day, start, n)
    for i, row in enumerate(rows):
        if i % 7 == 6:
            row["id"] = rows[i - 1]["id"]
        if i % 11 == 10:
            row["id"] = None
        if i % 5 == 4:
            row["value"] = 150.0 + i
        if i % 13 == 12:
            row["value"] = None
        if i % 17 == 16:
            row["value"] = float("nan")
        if i % 6 == 5:
            row["cat"] = "c'; DROP TABLE x; --"
        if i % 9 == 8:
            row["cat"] = None
    return rows


@pytest.fixture
def events(lh: phlo.Lakehouse) -> dict[dt.date, list[dict[str, Any]]]:
    """`raw.events` partitioned by day: day 1 clean, days 2 and 3 dirty; two appends (files)
    per day. Returns the rows of each day (the model)."""
    table = lh.create_table("raw.events", SCHEMA, partition_by=["_phlo_partition_date"])
    model: dict[dt.date, list[dict[str, Any]]] = {}
    for number, day in enumerate(DAYS):
        make = clean_rows if number == 0 else dirty_rows
        for half in (0, 1):
            rows = make(day, number * 1000 + half * 100, 100)
            table.append(pa.Table.from_pylist(rows, schema=SCHEMA))
            model.setdefault(day, []).extend(rows)
    return model


def all_checks(**overrides: Any) -> list[Any]:
    return [
        NullCheck(columns=["id", "value"]),
        RangeCheck(column="value", min_value=0, max_value=100),
        UniqueCheck(columns=["id"]),
        FreshnessCheck(timestamp_column="ts", max_age_hours=72, reference_time=REFERENCE),
        CountCheck(min_rows=1, max_rows=1000),
        PatternCheck(column="cat", pattern="[ab]$"),
        AcceptedValuesCheck(column="cat", values=["a", "b"]),
        CustomSQLCheck(name_="value_not_huge", sql="value < 200"),
    ]


def oracle(rows: list[dict[str, Any]]) -> dict[str, tuple[int, set[str]]]:
    """The original approach: pandas over the rows. Per check: failed_count and the ids of
    the failing rows."""
    df = pd.DataFrame(rows)
    ids = df["_phlo_row_id"]
    nulls = df[["id", "value"]].isna()
    value = df["value"].dropna()
    out_of_range = value[(value < 0) | (value > 100)].index
    duplicated = df.duplicated(subset=["id"], keep=False)
    cats = df["cat"].dropna()
    bad_pattern = cats[~cats.str.match(r"[ab]$")].index
    bad_values = cats[~cats.isin(["a", "b"])].index
    # DuckDB's semantics for the SQL check: NULL skips the row, NaN is above every number.
    huge = [i for i, r in enumerate(rows) if r["value"] is not None and not r["value"] < 200]
    return {
        "null_check_id_value": (int(nulls.sum().sum()), set(ids[nulls.any(axis=1)])),
        "range_check_value": (len(out_of_range), set(ids[out_of_range])),
        "unique_check_id": (int(duplicated.sum()), set(ids[duplicated])),
        "pattern_check_cat": (len(bad_pattern), set(ids[bad_pattern])),
        "accepted_values_check_cat": (len(bad_values), set(ids[bad_values])),
        "value_not_huge": (len(huge), set(ids[huge])),
    }


def test_every_check_passes_on_clean_data(lh: phlo.Lakehouse, events: Any) -> None:
    @phlo_quality(table="raw.events", checks=all_checks())
    def events_quality() -> None: ...

    results = events_quality.run("2024-01-01", lakehouse=lh)
    assert [r.name for r in results] == events_quality.check_names()
    for r in results:
        assert r.passed, r
        assert (r.failed_count, r.total_count, r.sample) == (0, 200, [])
        assert r.partition_key == "2024-01-01"
        assert r.metadata()["files_scanned"] == 2
        assert r.metadata()["files_total"] == 6


def test_every_check_fails_on_violations_with_exact_counts_samples_and_repro_sql(
    lh: phlo.Lakehouse, events: Any
) -> None:
    @phlo_quality(table="raw.events", checks=all_checks())
    def events_quality() -> None: ...

    rows = events[DAYS[1]]
    expected = oracle(rows)
    results = {r.name: r for r in events_quality.run("2024-01-02", lakehouse=lh)}
    con = duckdb_connection(lh, "raw.events")
    for name, (failed, failing_ids) in expected.items():
        r = results[name]
        assert not r.passed and r.severity == "error", name
        assert (r.failed_count, r.total_count) == (failed, 200), name
        assert 0 < len(r.sample) <= 20
        assert {s["_phlo_row_id"] for s in r.sample} <= failing_ids, name
        got = con.sql(r.repro_sql).to_arrow_table().column("_phlo_row_id").to_pylist()
        assert sorted(got) == sorted(failing_ids), name
        counted = con.sql(r.query_or_sql).fetchall()[0]
        assert counted is not None and counted[0] == failed, name
        metadata = r.metadata()
        for key in ("source", "partition_key", "failed_count", "total_count", "query_or_sql"):
            assert key in metadata
        assert metadata["source"] == "phlo"
        assert name in r.summary() and "failed" in r.summary()
    # Within the day every timestamp is fresh enough; a later reference makes it stale.
    assert results["freshness_check_ts"].passed
    assert results["count_check"].passed


def test_freshness_fails_when_the_newest_row_is_too_old(lh: phlo.Lakehouse, events: Any) -> None:
    @phlo_quality(
        table="raw.events",
        checks=[FreshnessCheck("ts", max_age_hours=1, reference_time=REFERENCE)],
    )
    def stale() -> None: ...

    (r,) = stale.run("2024-01-02", lakehouse=lh)
    assert not r.passed
    assert (r.failed_count, r.total_count) == (200, 200)
    assert r.details["newest"].startswith("2024-01-02T01:39")
    rows = duckdb_connection(lh, "raw.events").sql(r.repro_sql).fetchall()
    assert len(rows) == 200


def test_thresholds_and_severities(lh: phlo.Lakehouse, events: Any) -> None:
    failed = oracle(events[DAYS[1]])["range_check_value"][0]

    @phlo_quality(
        table="raw.events",
        checks=[
            RangeCheck("value", 0, 100, allow_threshold=failed / 200),
            UniqueCheck(["id"], allow_threshold=0.01, severity="warn"),
            NullCheck(["cat"], allow_threshold=0.2),
            CountCheck(min_rows=500),
        ],
    )
    def tolerant() -> None: ...

    by_name = {r.name: r for r in tolerant.run("2024-01-02", lakehouse=lh)}
    assert by_name["range_check_value"].passed
    assert by_name["range_check_value"].failed_count == failed
    unique = by_name["unique_check_id"]
    assert not unique.passed and unique.severity == "warn"
    assert by_name["null_check_cat"].passed
    count = by_name["count_check"]
    assert not count.passed and count.failed_count == 300


def test_partition_scoping_rolling_window_and_full_table(lh: phlo.Lakehouse, events: Any) -> None:
    checks = [UniqueCheck(["id"]), CountCheck(min_rows=0)]

    @phlo_quality(table="raw.events", checks=checks, rolling_window_days=2)
    def window() -> None: ...

    @phlo_quality(table="raw.events", checks=checks, full_table=True)
    def everything() -> None: ...

    @phlo_quality(table="raw.events", checks=checks, partition_aware=False)
    def unpartitioned() -> None: ...

    two_days = events[DAYS[1]] + events[DAYS[2]]
    r = window.run("2024-01-03", lakehouse=lh)[0]
    assert (r.total_count, r.details["files_scanned"]) == (400, 4)
    assert r.failed_count == oracle(two_days)["unique_check_id"][0]
    assert "BETWEEN DATE '2024-01-02' AND DATE '2024-01-03'" in r.repro_sql
    for definition in (everything, unpartitioned):
        r = definition.run("2024-01-03", lakehouse=lh)[0]
        assert (r.total_count, r.details["files_scanned"]) == (600, 6)
        assert r.partition_key == "2024-01-03"
    r = window.run(None, lakehouse=lh)[0]
    assert (r.total_count, r.partition_key) == (600, None)


def test_empty_partition_all_null_column_and_missing_column(
    lh: phlo.Lakehouse, events: Any
) -> None:
    table = lh.table("raw.events")
    nulls = pa.Table.from_pylist(
        [
            {**row, "value": None, "_phlo_partition_date": dt.date(2024, 2, 1)}
            for row in events[DAYS[0]][:10]
        ],
        schema=SCHEMA,
    )
    table.append(nulls)

    @phlo_quality(
        table="raw.events",
        checks=[
            NullCheck(["value"]),
            RangeCheck("value", min_value=0),
            UniqueCheck(["value"]),
            RangeCheck("missing_col", max_value=1),
            CountCheck(min_rows=1),
        ],
    )
    def edge() -> None: ...

    by_name = {r.name: r for r in edge.run("2024-02-01", lakehouse=lh)}
    assert (by_name["null_check_value"].failed_count, by_name["null_check_value"].total_count) == (
        10,
        10,
    )
    assert by_name["range_check_value"].passed
    assert by_name["unique_check_value"].failed_count == 10  # pandas: every NaN key is one key
    missing = by_name["range_check_missing_col"]
    assert not missing.passed and "missing_col" in missing.message
    assert missing.failed_count == 10 and missing.repro_sql == ""
    assert by_name["count_check"].passed

    empty = {r.name: r for r in edge.run("2024-03-01", lakehouse=lh)}
    assert empty["count_check"].failed_count == 1 and not empty["count_check"].passed
    for name in ("null_check_value", "range_check_value", "unique_check_value"):
        assert empty[name].passed and empty[name].total_count == 0
        assert empty[name].details["files_scanned"] == 0


def test_names_and_values_with_quotes_semicolons_and_keywords_stay_data(lh: phlo.Lakehouse) -> None:
    schema = pa.schema([("select", pa.int64()), ('a"b', pa.string()), ("x;y", pa.float64())])
    lh.create_namespace("select")
    table = lh.create_table("select.from", schema)
    values = ["it's", "x;y", "'; DROP TABLE t; --", "ok", None]
    table.append(
        pa.table(
            {"select": [1, 1, 2, 3, 4], 'a"b': values, "x;y": [1.0, 2.0, 3.0, -4.0, None]},
            schema=schema,
        )
    )

    @phlo_quality(
        table="select.from",
        checks=[
            AcceptedValuesCheck('a"b', ["it's", "x;y", "ok"]),
            UniqueCheck(["select"]),
            RangeCheck("x;y", min_value=0),
            NullCheck(['a"b', "x;y"]),
            PatternCheck('a"b', "[a-z]"),
        ],
    )
    def odd() -> None: ...

    results = {r.name: r for r in odd.run(lakehouse=lh)}
    con = duckdb_connection(lh, "select.from")
    expected = {
        "accepted_values_check_a_b": [("'; DROP TABLE t; --",)],
        "unique_check_select": [(1,), (1,)],
        "range_check_x_y": [(-4.0,)],
        "null_check_a_b_x_y": [(None,)],
        "pattern_check_a_b": [("'; DROP TABLE t; --",)],
    }
    column = {
        "accepted_values_check_a_b": 'a"b',
        "unique_check_select": "select",
        "range_check_x_y": "x;y",
        "null_check_a_b_x_y": 'a"b',
        "pattern_check_a_b": 'a"b',
    }
    for name, rows in expected.items():
        r = results[name]
        assert r.failed_count == (2 if name == "null_check_a_b_x_y" else len(rows)), name
        got = con.sql(r.repro_sql).to_arrow_table().column(column[name]).to_pylist()
        assert sorted(got, key=str) == sorted([row[0] for row in rows], key=str), name
    # Nothing was dropped: the table and every row are still there.
    assert con.sql('SELECT count(*) FROM "select"."from"').fetchall() == [(5,)]
    assert lh.table("select.from").to_arrow().num_rows == 5


class PositiveValue(RowCheck):
    @property
    def name(self) -> str:
        return "positive_value"

    def columns(self) -> list[str]:
        return ["value"]

    def failing(self, batch: pa.RecordBatch) -> pa.Array:
        return pc.less_equal(batch.column("value"), 0)

    def failing_sql(self, scope: Any) -> str:
        return '"value" <= 0'


def test_custom_sql_schema_row_checks_and_sql_errors(lh: phlo.Lakehouse, events: Any) -> None:
    class Events(pandera.DataFrameModel):
        id: int = pandera.Field(nullable=True)
        value: float = pandera.Field(le=100, nullable=True)

    @phlo_quality(
        table="raw.events",
        checks=[
            SchemaCheck(Events),
            CustomSQLCheck("broken_sql", "no_such_column > 1"),
            CustomSQLCheck("not_a", "cat = 'a'", expected=False),
            PositiveValue(),
        ],
    )
    def custom() -> None: ...

    rows = events[DAYS[1]]
    df = pd.DataFrame(rows)
    by_name = {r.name: r for r in custom.run("2024-01-02", lakehouse=lh)}
    contract = by_name["pandera_contract"]
    assert contract.source == "pandera" and not contract.passed
    assert contract.failed_count == int((df["value"] > 100).sum())
    assert contract.sample and all("_phlo_row_id" in s for s in contract.sample)
    con = duckdb_connection(lh, "raw.events")
    sampled = {s["_phlo_row_id"] for s in contract.sample}
    got = con.sql(contract.repro_sql).to_arrow_table().column("_phlo_row_id").to_pylist()
    assert set(got) == sampled
    broken = by_name["broken_sql"]
    assert not broken.passed and "no_such_column" in broken.message
    assert by_name["not_a"].failed_count == int((df["cat"] == "a").sum())
    positive = by_name["positive_value"]
    zero = df.index[df["value"] <= 0]
    assert positive.failed_count == len(zero)
    got = con.sql(positive.repro_sql).to_arrow_table().column("_phlo_row_id").to_pylist()
    assert sorted(got) == sorted(df["_phlo_row_id"][zero])


def reconciliation_source(lh: phlo.Lakehouse, events: Any) -> None:
    """raw.source: 190 of raw.events' rows of the second day, and 3 test rows (ids >= 5000)
    the table lacks."""
    source = lh.create_table("raw.source", SCHEMA, partition_by=["_phlo_partition_date"])
    day2 = events[DAYS[1]]
    source.append(pa.Table.from_pylist(day2[:190] + clean_rows(DAYS[1], 5000, 3), schema=SCHEMA))


def test_reconciliation_row_counts_and_keys(lh: phlo.Lakehouse, events: Any) -> None:
    reconciliation_source(lh, events)

    @phlo_quality(
        table="raw.events",
        checks=[
            ReconciliationCheck("raw.source"),
            ReconciliationCheck("raw.source", check_type="rowcount_gte", tolerance=0.05),
        ],
    )
    def counts() -> None: ...

    @phlo_quality(
        table="raw.events",
        checks=[
            ReconciliationCheck("raw.source", check_type="key_parity", key_columns=["_phlo_row_id"])
        ],
    )
    def keys() -> None: ...

    parity, gte = counts.run("2024-01-02", lakehouse=lh)
    assert not parity.passed and parity.failed_count == 7 and parity.details["source_count"] == 193
    assert gte.passed
    (key,) = keys.run("2024-01-02", lakehouse=lh)
    assert not key.passed and key.failed_count == 13  # 10 rows only here, 3 only there
    con = duckdb_connection(lh, ["raw.events", "raw.source"])
    sides = con.sql(key.repro_sql).to_arrow_table().column("side").to_pylist()
    assert sorted(sides) == ["source"] * 3 + ["target"] * 10


def test_reconciliation_where_clause_filters_the_source(lh: phlo.Lakehouse, events: Any) -> None:
    # The source's 3 test rows never reach the table: where_clause leaves them out.
    reconciliation_source(lh, events)

    @phlo_quality(
        table="raw.events",
        checks=[
            ReconciliationCheck("raw.source", where_clause="coalesce(id, 0) < 5000"),
            ReconciliationCheck(
                "raw.source",
                check_type="key_parity",
                key_columns=["_phlo_row_id"],
                where_clause="coalesce(id, 0) < 5000",
            ),
        ],
    )
    def filtered() -> None: ...

    parity, key = filtered.run("2024-01-02", lakehouse=lh)
    assert parity.details["source_count"] == 190 and parity.failed_count == 10
    assert key.failed_count == 10  # only the table's 10 extra rows; the 3 test rows are out
    con = duckdb_connection(lh, ["raw.events", "raw.source"])
    assert con.sql(parity.query_or_sql).fetchall() == [(200, 190)]
    sides = con.sql(key.repro_sql).to_arrow_table().column("side").to_pylist()
    assert sides == ["target"] * 10
    with pytest.raises(ConfigError, match="where_clause"):
        ReconciliationCheck("raw.source", where_clause="  ")


def test_run_opens_the_project_lakehouse(
    lh: phlo.Lakehouse, events: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHLO_LAKEHOUSE", str(lh.root))

    @phlo_quality(table="raw.events", checks=[CountCheck(min_rows=1)])
    def counted() -> None: ...

    assert counted.run("2024-01-01")[0].total_count == 200
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        counted.run("01/02/2024", lakehouse=lh)


def test_a_partition_column_the_table_lacks_is_an_input_error(
    lh: phlo.Lakehouse, events: Any
) -> None:
    @phlo_quality(table="raw.events", checks=[CountCheck(min_rows=1)], partition_column="day")
    def wrong() -> None: ...

    with pytest.raises(InputError, match="partition column day") as info:
        wrong.run("2024-01-01", lakehouse=lh)
    assert info.value.column == "day"


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"table": "events"}, "table"),
        ({"checks": []}, "checks"),
        ({"checks": ["not a check"]}, "checks"),
        ({"checks": [CountCheck(min_rows=1), CountCheck(max_rows=2)]}, "count_check"),
        ({"rolling_window_days": 0}, "rolling_window_days"),
        ({"rolling_window_days": 3, "full_table": True}, "rolling_window_days"),
        ({"blocking": "yes"}, "blocking"),
        ({"partition_column": ""}, "partition_column"),
        ({"group": 3}, "group"),
    ],
)
def test_bad_decorator_settings_are_config_errors(kwargs: dict[str, Any], parameter: str) -> None:
    settings: dict[str, Any] = {"table": "raw.events", "checks": [CountCheck(min_rows=1)], **kwargs}
    with pytest.raises(ConfigError, match=parameter):
        phlo_quality(**settings)


@pytest.mark.parametrize(
    ("make", "parameter"),
    [
        (lambda: NullCheck([]), "columns"),
        (lambda: NullCheck(["a"], allow_threshold=2), "allow_threshold"),
        (lambda: NullCheck(["a"], severity="fatal"), "severity"),  # type: ignore[arg-type]
        (lambda: RangeCheck("a", 5, 1), "min_value"),
        (lambda: RangeCheck("a"), "min_value"),
        (lambda: CountCheck(), "min_rows"),
        (lambda: CountCheck(min_rows=-1), "min_rows"),
        (lambda: FreshnessCheck("ts", max_age_hours=0), "max_age_hours"),
        (lambda: PatternCheck("a", "("), "pattern"),
        (lambda: AcceptedValuesCheck("a", []), "values"),
        (lambda: CustomSQLCheck("x", "a > 1; DROP TABLE t"), "sql"),
        (lambda: ReconciliationCheck("source"), "source_table"),
        (lambda: ReconciliationCheck("raw.s", check_type="key_parity"), "key_columns"),
    ],
)
def test_bad_check_parameters_are_config_errors(make: Any, parameter: str) -> None:
    with pytest.raises(ConfigError, match=parameter):
        make()


def test_public_api_exports() -> None:
    assert phlo.phlo_quality is phlo_quality
    for name in (
        "NullCheck",
        "RangeCheck",
        "UniqueCheck",
        "FreshnessCheck",
        "CountCheck",
        "SchemaCheck",
        "CustomSQLCheck",
        "PatternCheck",
        "AcceptedValuesCheck",
        "ReconciliationCheck",
        "CheckResult",
    ):
        assert getattr(phlo, name) is getattr(phlo.quality, name)
