"""Quality checks answered from the data files' metadata (docs/quality.md): the answer equals
pandas' over the same rows whether metadata settles a check or the scan does, a settled
check's columns are not read, and every case metadata cannot prove exactly — a violation
(the sample needs the rows), files the filter keeps only part of, missing statistics
(PyIceberg with `write.metadata.metrics.default`), string bounds, position deletes from a
merge-on-read merge — falls back to the scan. Also uniqueness counted exactly as pandas'
`duplicated(keep=False)` for every key layout."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

import phlo
from phlo.quality import (
    CountCheck,
    FreshnessCheck,
    NullCheck,
    RangeCheck,
    UniqueCheck,
    phlo_quality,
)
from phlo.quality.contract import CheckResult

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("value", pa.float64()),
        pa.field("name", pa.string()),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("_phlo_partition_date", pa.date32()),
        pa.field("_phlo_row_id", pa.string()),
    ]
)
DAYS = [dt.date(2024, 1, 1), dt.date(2024, 1, 2)]
REFERENCE = dt.datetime(2024, 1, 3, tzinfo=dt.UTC)
SETTLED_KINDS = ("null_check_id_value", "range_check_value", "count_check", "freshness_check_ts")


def rows_of(day: dt.date, start: int, n: int) -> list[dict[str, Any]]:
    at = dt.datetime.combine(day, dt.time(), dt.UTC)
    return [
        {
            "id": start + i,
            "value": float(i % 101),
            "name": f"name-{i:04d}-with-a-long-tail-beyond-sixteen-characters",
            "ts": at + dt.timedelta(minutes=i),
            "_phlo_partition_date": day,
            "_phlo_row_id": f"r{start + i}",
        }
        for i in range(n)
    ]


def checks(max_age_hours: float = 48) -> list[Any]:
    return [
        NullCheck(columns=["id", "value"]),
        RangeCheck(column="value", min_value=0, max_value=100),
        CountCheck(min_rows=1),
        FreshnessCheck(
            timestamp_column="ts", max_age_hours=max_age_hours, reference_time=REFERENCE
        ),
    ]


def run(lh: phlo.Lakehouse, partition: str | None, **kw: Any) -> dict[str, CheckResult]:
    @phlo_quality(table="raw.events", checks=kw.pop("checks", None) or checks(**kw))
    def events_quality() -> None: ...

    return {r.name: r for r in events_quality.run(partition, lakehouse=lh)}


def pandas_answers(rows: list[dict[str, Any]], max_age_hours: float = 48) -> dict[str, Any]:
    """The original approach over the same rows: (failed_count, total_count) per check, and
    the newest timestamp."""
    df = pd.DataFrame(rows)
    value = df["value"].dropna()
    newest = df["ts"].max()
    cutoff = REFERENCE - dt.timedelta(hours=max_age_hours)
    stale = pd.notna(newest) and newest < cutoff
    return {
        "null_check_id_value": (int(df[["id", "value"]].isna().sum().sum()), len(df)),
        "range_check_value": (int(((value < 0) | (value > 100)).sum()), len(df)),
        "count_check": (0, len(df)),
        "freshness_check_ts": (int(df["ts"].notna().sum()) if stale else 0, len(df)),
        "newest": None if pd.isna(newest) else newest.tz_convert(None).isoformat(),
    }


def assert_equals_pandas(
    results: dict[str, CheckResult], rows: list[dict[str, Any]], max_age_hours: float = 48
) -> None:
    expected = pandas_answers(rows, max_age_hours)
    for name in SETTLED_KINDS:
        assert (results[name].failed_count, results[name].total_count) == expected[name], name
    assert results["freshness_check_ts"].details.get("newest") == expected["newest"]


def provenance(results: dict[str, CheckResult]) -> dict[str, bool]:
    return {name: results[name].details["metadata_only"] for name in SETTLED_KINDS}


@pytest.fixture
def by_day(lh: phlo.Lakehouse) -> dict[dt.date, list[dict[str, Any]]]:
    """`raw.events` partitioned by day, two appends (files) per day; the model by day."""
    table = lh.create_table("raw.events", SCHEMA, partition_by=["_phlo_partition_date"])
    model: dict[dt.date, list[dict[str, Any]]] = {}
    for number, day in enumerate(DAYS):
        for half in (0, 1):
            rows = rows_of(day, number * 1000 + half * 100, 100)
            table.append(pa.Table.from_pylist(rows, schema=SCHEMA))
            model.setdefault(day, []).extend(rows)
    return model


def test_metadata_settles_passing_checks_without_reading_their_columns(
    lh: phlo.Lakehouse, by_day: dict[dt.date, list[dict[str, Any]]]
) -> None:
    for partition, rows in (
        ("2024-01-02", by_day[DAYS[1]]),
        (None, by_day[DAYS[0]] + by_day[DAYS[1]]),
    ):
        results = run(lh, partition)
        assert_equals_pandas(results, rows)
        assert all(r.passed for r in results.values())
        assert provenance(results) == dict.fromkeys(SETTLED_KINDS, True)
        for r in results.values():
            assert (r.details["files_read"], r.details["columns_read"], r.sample) == (0, [], [])
            assert r.details["files_scanned"] == (2 if partition else 4)

    # A check metadata cannot answer reads its own column (and the row ids), nothing else.
    mixed = run(lh, "2024-01-01", checks=[*checks(), UniqueCheck(columns=["id"])])
    assert provenance(mixed) == dict.fromkeys(SETTLED_KINDS, True)
    unique = mixed["unique_check_id"]
    assert unique.details["metadata_only"] is False
    assert unique.details["columns_read"] == ["_phlo_row_id", "id"]
    assert (unique.details["files_read"], unique.total_count) == (2, 200)
    assert_equals_pandas(mixed, by_day[DAYS[0]])


def test_violations_are_counted_by_the_scan_with_samples(lh: phlo.Lakehouse) -> None:
    table = lh.create_table("raw.events", SCHEMA, partition_by=["_phlo_partition_date"])
    rows = rows_of(DAYS[0], 0, 300)
    for i, row in enumerate(rows):
        if i % 7 == 3:
            row["value"] = 150.0 + i  # bounds reach outside [0, 100]
        if i % 11 == 5:
            row["id"] = None
        if i % 13 == 4:
            row["value"] = float("nan")  # missing for pandas: no statistic counts it as null
    table.append(pa.Table.from_pylist(rows, schema=SCHEMA))

    # Stale: newest row older than 1 hour before the reference.
    results = run(lh, "2024-01-01", max_age_hours=1)
    assert_equals_pandas(results, rows, max_age_hours=1)
    assert provenance(results) == {
        "null_check_id_value": False,
        "range_check_value": False,
        "count_check": True,
        "freshness_check_ts": False,
    }
    for name in ("null_check_id_value", "range_check_value", "freshness_check_ts"):
        assert not results[name].passed and results[name].sample, name
    assert results["count_check"].details["columns_read"] == ["_phlo_row_id", "id", "value", "ts"]


def test_files_the_filter_keeps_only_in_part_are_scanned(lh: phlo.Lakehouse) -> None:
    # Not partitioned: each file holds both days, so its statistics cannot settle one day.
    table = lh.create_table("raw.events", SCHEMA)
    model: list[dict[str, Any]] = []
    for start in (0, 500):
        rows = rows_of(DAYS[0], start, 100) + rows_of(DAYS[1], start + 100, 150)
        table.append(pa.Table.from_pylist(rows, schema=SCHEMA))
        model.extend(rows)
    day = [r for r in model if r["_phlo_partition_date"] == DAYS[1]]
    results = run(lh, "2024-01-02")
    assert_equals_pandas(results, day)
    assert provenance(results) == dict.fromkeys(SETTLED_KINDS, False)
    assert results["count_check"].details["files_read"] == 2
    # The whole table: every file is whole again.
    whole = run(lh, None)
    assert_equals_pandas(whole, model)
    assert provenance(whole) == dict.fromkeys(SETTLED_KINDS, True)


@pytest.mark.parametrize("mode", ["none", "counts"])
def test_files_written_without_statistics_are_scanned(lh: phlo.Lakehouse, mode: str) -> None:
    lh.create_table("raw.events", SCHEMA, partition_by=["_phlo_partition_date"])
    lh.table("raw.events").set_properties({"write.metadata.metrics.default": mode})
    catalog = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
    rows = rows_of(DAYS[0], 0, 120) + rows_of(DAYS[1], 200, 80)
    catalog.load_table("raw.events").append(pa.Table.from_pylist(rows, schema=SCHEMA))
    results = run(lh, None)
    assert_equals_pandas(results, rows)
    # No bounds in either mode; PyIceberg records no NaN counts, so a float column's missing
    # cells are unknown too. The row count is always recorded.
    assert provenance(results) == {**dict.fromkeys(SETTLED_KINDS, False), "count_check": True}
    # Null counts of a column that cannot hold NaN: recorded in "counts" mode only.
    (ids,) = run(lh, None, checks=[NullCheck(columns=["id"])]).values()
    assert (ids.failed_count, ids.total_count) == (0, 200)
    assert ids.details["metadata_only"] is (mode == "counts")


def test_position_deletes_of_a_merge_on_read_merge_are_scanned(lh: phlo.Lakehouse) -> None:
    table = lh.create_table("raw.events", SCHEMA, partition_by=["_phlo_partition_date"])
    rows = rows_of(DAYS[0], 0, 200)
    table.append(pa.Table.from_pylist(rows, schema=SCHEMA))
    # Replace 20 rows (the new ones newer than any before) and add 5.
    changed = [{**r, "value": 7.0, "ts": r["ts"] + dt.timedelta(hours=10)} for r in rows[40:60]]
    added = rows_of(DAYS[0], 1000, 5)
    table.merge(
        pa.Table.from_pylist(changed + added, schema=SCHEMA), "id", write_mode="merge-on-read"
    )
    assert table.delete_stats().delete_files >= 1
    model = {r["id"]: r for r in rows}
    model.update({r["id"]: r for r in changed + added})
    results = run(lh, "2024-01-01")
    assert_equals_pandas(results, list(model.values()))
    assert provenance(results) == dict.fromkeys(SETTLED_KINDS, False)


def test_string_bounds_never_settle_a_range(
    lh: phlo.Lakehouse, by_day: dict[dt.date, list[dict[str, Any]]]
) -> None:
    # Writers may truncate string bounds: the scan decides.
    check = RangeCheck(column="name", min_value="name-0000", max_value="name-0050")
    (result,) = run(lh, "2024-01-01", checks=[check]).values()
    names = pd.Series([r["name"] for r in by_day[DAYS[0]]])
    expected = int(((names < "name-0000") | (names > "name-0050")).sum())
    assert (result.failed_count, result.total_count) == (expected, 200)
    assert expected > 0 and result.details["metadata_only"] is False


KEYS = {
    "int64": pa.array([5, 1, 5, 2, 3, 3, 3, None, None, 9], pa.int64()),
    "string": pa.array(["a", "b", "a", None, "c", "", "", None, "d", "é"]),
    "all duplicated": pa.array([4] * 10, pa.int64()),
    "no duplicates": pa.array(range(10), pa.int64()),
    "one null": pa.array([1, 2, None, 3, 4, 5, 6, 7, 8, 9], pa.int64()),
}


@pytest.mark.parametrize("layout", [*KEYS, "multi-column"])
def test_uniqueness_counts_every_row_of_a_duplicated_key_as_pandas(
    lh: phlo.Lakehouse, layout: str
) -> None:
    if layout == "multi-column":
        data = pa.table(
            {
                "k": pa.array([1, 1, 1, 2, 2, None, None, 3, 3, None], pa.int64()),
                "s": pa.array(["x", "x", "y", None, None, "z", "z", "w", "v", None]),
            }
        )
    else:
        data = pa.table({"k": KEYS[layout]})
    key = data.column_names
    table = lh.create_table("raw.events", data.schema)
    # Two files, so duplicates span them.
    table.append(data.slice(0, 4))
    table.append(data.slice(4))
    (result,) = run(lh, None, checks=[UniqueCheck(columns=key)]).values()
    expected = int(data.to_pandas().duplicated(subset=key, keep=False).sum())
    assert (result.failed_count, result.total_count) == (expected, 10)
    assert result.passed == (expected == 0)
    # Samples: each occurrence after a key's first.
    distinct = len(data.to_pandas().drop_duplicates(subset=key))
    assert len(result.sample) == len(data) - distinct


# Integer keys per file, in the orders a table's files come in: sorted keys are checked
# without an index while their ranges stay disjoint (docs/quality.md).
KEY_FILES: dict[str, list[list[int | None]]] = {
    "sorted, adjacent": [list(range(0, 50)), list(range(50, 120)), list(range(120, 121))],
    "sorted, files out of order with gaps": [list(range(500, 600, 3)), list(range(0, 90, 7))],
    "unsorted": [[5, 3, 9, 1], [8, 2, 7, 0]],
    "overlapping between files, no duplicate": [list(range(0, 100, 2)), list(range(1, 100, 2))],
    "duplicated across sorted files": [list(range(0, 60)), list(range(50, 80)), [59, 70, 200]],
    "duplicated within a sorted file": [[1, 2, 2, 3], list(range(10, 20))],
    "sorted then unsorted repeats": [list(range(0, 30)), [29, 3, 3, 100, 0], list(range(31, 40))],
    "nulls": [[1, None, 3, 4], list(range(5, 9)), [None, None, 2]],
}


def key_model(files: list[list[int | None]]) -> tuple[int, list[int | None]]:
    """Duplicated rows (every occurrence of a repeated key, nulls equal) and the sampled keys:
    each occurrence after a key's first, in file order."""
    keys = [k for file in files for k in file]
    counts = Counter(keys)
    seen: set[int | None] = set()
    again = []
    for k in keys:
        if k in seen:
            again.append(k)
        seen.add(k)
    return sum(n for n in counts.values() if n > 1), again


@pytest.mark.parametrize("writer", ["phlo", "pyiceberg"])
@pytest.mark.parametrize("layout", list(KEY_FILES))
def test_uniqueness_of_sorted_unsorted_and_overlapping_integer_keys_equals_the_model(
    lh: phlo.Lakehouse, layout: str, writer: str
) -> None:
    files = KEY_FILES[layout]
    schema = pa.schema([pa.field("k", pa.int64()), pa.field("_phlo_row_id", pa.string())])
    table = lh.create_table("raw.events", schema)
    catalog = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
    row = 0
    for keys in files:
        data = pa.table(
            {
                "k": pa.array(keys, pa.int64()),
                "_phlo_row_id": [f"r{row + i}" for i in range(len(keys))],
            }
        )
        row += len(keys)
        if writer == "phlo":
            table.append(data)
        else:
            catalog.load_table("raw.events").append(data)
    (result,) = run(lh, None, checks=[UniqueCheck(columns=["k"])]).values()
    duplicated, again = key_model(files)
    assert (result.failed_count, result.total_count) == (duplicated, row)
    # Files may be read in any order: the sample holds the later occurrences of some order.
    assert Counter(s["k"] for s in result.sample) == Counter(again)
    assert result.details["files_read"] == len(files)


PATTERN_VALUES = [
    "C123",
    "c123",
    "C12x",
    "xC1",
    "C",
    "C٣",  # an Arabic-Indic digit: \d is Unicode, as in Python
    "",
    None,
    "café au lait",
    "cafés",
    "ÉCOLE",
    "école",
    "line\nC1",
]


@pytest.mark.parametrize(
    ("pattern", "case_sensitive"),
    [
        (r"C\d+", True),
        (r"C\d+", False),
        # A Unicode word boundary next to non-ASCII text: the lazy DFA gives up, the full
        # engine answers.
        (r"caf\w*\b", True),
        (r"[a-zé]+", False),
        ("école|ÉCOLE", True),
    ],
)
def test_patterns_match_as_python_re_match(
    lh: phlo.Lakehouse, pattern: str, case_sensitive: bool
) -> None:
    from phlo.quality import PatternCheck

    data = pa.table({"s": pa.array(PATTERN_VALUES, pa.string())})
    lh.create_table("raw.events", data.schema).append(data)
    check = PatternCheck(column="s", pattern=pattern, case_sensitive=case_sensitive)
    (result,) = run(lh, None, checks=[check]).values()
    # The oracle is Python's `re` itself: pandas' `str.match` on Arrow-backed strings follows
    # RE2 (ASCII `\d`) in some pandas versions.
    flags = 0 if case_sensitive else re.IGNORECASE
    expected = sum(re.match(pattern, v, flags) is None for v in PATTERN_VALUES if v is not None)
    assert (result.failed_count, result.total_count) == (expected, len(PATTERN_VALUES))
