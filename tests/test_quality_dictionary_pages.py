"""Pattern and accepted-values checks answered from the data files' dictionary pages
(docs/quality.md, "Answers from metadata"): where every chunk in scope is dictionary-encoded
and every dictionary value passes — or a chunk stored plain (PyArrow's fallback) whose every
value passes —, the check's column is not read and the result equals the scan's; a failing
value or a missing column gives the scan's exact counts and sample. Files written by phlo, by PyIceberg and by PyArrow (added),
compared with a plain Python model of the rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog

import phlo
from phlo.quality import (
    AcceptedValuesCheck,
    CountCheck,
    PatternCheck,
    UniqueCheck,
    phlo_quality,
)
from phlo.quality.contract import CheckResult
from test_quality_dictionaries import ACCEPTED, PATTERN, failing_rows

SCHEMA = pa.schema(
    [
        pa.field("_phlo_row_id", pa.string()),
        pa.field("category", pa.string()),
        pa.field("code", pa.string()),
        pa.field("_phlo_partition_date", pa.date32()),
    ]
)
DAYS = [dt.date(2024, 1, d) for d in range(1, 6)]


def rows(day: dt.date, n: int, bad_every: int = 0) -> list[dict[str, Any]]:
    """Accepted categories and matching codes (nulls among both); with `bad_every`, a category
    and a code that fail every `bad_every`th row."""
    out = []
    for i in range(n):
        bad = bad_every and i % bad_every == 0
        out.append(
            {
                "_phlo_row_id": f"{day}-{i}",
                "category": None if i % 9 == 0 else ("nope" if bad else ACCEPTED[i % 4]),
                "code": None if i % 7 == 0 else (f"X{i}" if bad else f"C{i % 500}"),
                "_phlo_partition_date": day,
            }
        )
    return out


CHECKS = [
    AcceptedValuesCheck("category", ACCEPTED),
    PatternCheck("code", PATTERN),
    PatternCheck("absent", PATTERN),
    CountCheck(min_rows=1),
]


def run(lh: phlo.Lakehouse, partition: str | None) -> dict[str, CheckResult]:
    @phlo_quality(table="raw.events", checks=CHECKS)
    def events_quality() -> None: ...

    return {r.name: r for r in events_quality.run(partition, lakehouse=lh)}


def test_dictionaries_settle_passing_checks_and_the_scan_counts_the_rest(
    lh: phlo.Lakehouse, tmp_path: Path
) -> None:
    table = lh.create_table("raw.events", SCHEMA, partition_by=["_phlo_partition_date"])
    catalog = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
    model: dict[dt.date, list[dict[str, Any]]] = {}
    # Day 1: phlo's files, every value passing. Day 2: PyIceberg's. Day 3: PyArrow's, the
    # codes' dictionary so small the writer falls back to plain mid-chunk. Day 4: phlo's,
    # failing values. Day 5: phlo's and PyIceberg's, passing.
    model[DAYS[0]] = rows(DAYS[0], 3000)
    table.append(pa.Table.from_pylist(model[DAYS[0]], schema=SCHEMA))
    model[DAYS[1]] = rows(DAYS[1], 2000)
    catalog.load_table("raw.events").append(pa.Table.from_pylist(model[DAYS[1]], schema=SCHEMA))
    model[DAYS[2]] = rows(DAYS[2], 2000)
    fallback = tmp_path / "fallback.parquet"
    pq.write_table(
        pa.Table.from_pylist(model[DAYS[2]], schema=SCHEMA), fallback, dictionary_pagesize_limit=64
    )
    catalog.load_table("raw.events").add_files([str(fallback)])
    model[DAYS[3]] = rows(DAYS[3], 2500, bad_every=97)
    table.append(pa.Table.from_pylist(model[DAYS[3]], schema=SCHEMA))
    first, second = rows(DAYS[4], 1000), rows(DAYS[4], 1000)
    for row in second:
        row["_phlo_row_id"] += "b"
    table.append(pa.Table.from_pylist(first, schema=SCHEMA))
    catalog.load_table("raw.events").append(pa.Table.from_pylist(second, schema=SCHEMA))
    model[DAYS[4]] = first + second

    # (partition, whether each of the category and code checks is settled from dictionaries)
    cases: list[tuple[str | None, list[dt.date], bool, bool]] = [
        ("2024-01-01", [DAYS[0]], True, True),
        ("2024-01-02", [DAYS[1]], True, True),
        # Codes plain-encoded after the first dictionary page: judged from the pages, not read.
        ("2024-01-03", [DAYS[2]], True, True),
        # A failing value in each: both read, with exact counts and samples.
        ("2024-01-04", [DAYS[3]], False, False),
        ("2024-01-05", [DAYS[4]], True, True),
        (None, DAYS, False, False),
    ]
    for partition, days, category_settled, code_settled in cases:
        scoped = [r for d in days for r in model[d]]
        results = run(lh, partition)
        by_id = {r["_phlo_row_id"]: r for r in scoped}
        for (name, ids), settled in zip(
            failing_rows(scoped).items(), (category_settled, code_settled), strict=True
        ):
            result = results[name]
            assert (result.failed_count, result.total_count) == (len(ids), len(scoped)), name
            assert result.passed == (not ids)
            assert result.details["dictionary_only"] is settled, (partition, name)
            assert result.details["metadata_only"] is False
            column = name.rsplit("_", 1)[1]
            assert (column in result.details["columns_read"]) is not settled, (partition, name)
            assert len(result.sample) == min(20, len(ids))
            for sample in result.sample:
                assert sample["_phlo_row_id"] in ids
                assert sample[column] == by_id[sample["_phlo_row_id"]][column]
        absent = results["pattern_check_absent"]
        assert not absent.passed and "absent" in absent.message
        assert results["count_check"].total_count == len(scoped)


def test_rows_are_counted_by_a_scan_when_no_check_reads_a_column_and_deletes_apply(
    lh: phlo.Lakehouse,
) -> None:
    """Metadata cannot count rows some delete file removes: with nothing else to read (a
    count, checks settled from dictionaries), one column is still scanned for the count."""
    table = lh.create_table(
        "raw.events",
        SCHEMA,
        partition_by=["_phlo_partition_date"],
        properties={"write.delete.mode": "merge-on-read"},
    )
    model = rows(DAYS[0], 3000)
    table.append(pa.Table.from_pylist(model, schema=SCHEMA))
    table.delete([("_phlo_row_id", "in", [r["_phlo_row_id"] for r in model[:250]])])
    left = len(model) - 250

    @phlo_quality(table="raw.events", checks=[CountCheck(min_rows=1)])
    def count_quality() -> None: ...

    (count,) = count_quality.run("2024-01-01", lakehouse=lh)
    assert (count.passed, count.total_count, count.details["metadata_only"]) == (True, left, False)
    results = run(lh, "2024-01-01")
    for name in ("accepted_values_check_category", "pattern_check_code"):
        assert results[name].details["dictionary_only"] is True, name
        assert (results[name].failed_count, results[name].total_count) == (0, left), name
    assert results["count_check"].total_count == left


def test_a_column_failing_its_dictionary_is_read_after_the_others_for_its_checks_only(
    lh: phlo.Lakehouse,
) -> None:
    """The columns other checks read stream while the dictionary pages are judged; a column
    some value of which fails is read afterwards, into its own checks only: the uniqueness
    check sees each row once (fed twice, every row would be a duplicate), every total is the
    rows checked, and the failing checks' counts and samples are exact. Two files in the
    partition, one of them without a failing value, and a second partition out of scope."""
    table = lh.create_table("raw.events", SCHEMA, partition_by=["_phlo_partition_date"])
    first, second = rows(DAYS[0], 1500, bad_every=97), rows(DAYS[0], 1500)
    for row in second:
        row["_phlo_row_id"] += "b"
    for part in (first, second, rows(DAYS[1], 500)):
        table.append(pa.Table.from_pylist(part, schema=SCHEMA))
    scoped = first + second

    @phlo_quality(
        table="raw.events",
        checks=[UniqueCheck(["_phlo_row_id"]), *CHECKS[:2], CountCheck(min_rows=1)],
    )
    def events_quality() -> None: ...

    results = {r.name: r for r in events_quality.run("2024-01-01", lakehouse=lh)}
    unique = results["unique_check__phlo_row_id"]
    assert (unique.passed, unique.failed_count, unique.total_count) == (True, 0, len(scoped))
    assert results["count_check"].total_count == len(scoped)
    by_id = {r["_phlo_row_id"]: r for r in scoped}
    for name, ids in failing_rows(scoped).items():
        result = results[name]
        assert ids and (result.failed_count, result.total_count) == (len(ids), len(scoped))
        assert result.details["dictionary_only"] is False
        column = name.rsplit("_", 1)[1]
        assert result.details["columns_read"][0] == "_phlo_row_id"
        assert column in result.details["columns_read"]
        assert len(result.sample) == min(20, len(ids))
        for sample in result.sample:
            assert sample[column] == by_id[sample["_phlo_row_id"]][column]
