"""Quality checks over string columns read as Arrow dictionaries: dictionary-encoded files
(their dictionaries judged once per distinct value), files whose writer fell back to plain
encoding mid-chunk, plain files, and files written by PyIceberg and by phlo, all in one
table. Every count and sample is compared with a plain Python model of the rows."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog

import phlo
from phlo.quality import AcceptedValuesCheck, NullCheck, PatternCheck, UniqueCheck, phlo_quality

SCHEMA = pa.schema(
    [
        pa.field("_phlo_row_id", pa.string()),
        pa.field("category", pa.string()),
        pa.field("code", pa.string()),
    ]
)
ACCEPTED = ["click", "view", "purchase", "refund"]
PATTERN = r"C\d+"


def failing_rows(model: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Row ids each accepted-values (`category`) and pattern (`code`) check must fail."""
    pattern = re.compile(PATTERN)
    return {
        "accepted_values_check_category": {
            r["_phlo_row_id"]
            for r in model
            if r["category"] is not None and r["category"] not in ACCEPTED
        },
        "pattern_check_code": {
            r["_phlo_row_id"]
            for r in model
            if r["code"] is not None and not pattern.match(r["code"])
        },
    }


def rows(start: int, n: int) -> list[dict[str, Any]]:
    """Rows with failing and null categories and codes at irregular positions; codes repeat
    (so a dictionary holds fewer values than rows) and some occur once per file."""
    out = []
    for i in range(start, start + n):
        category = None if i % 17 == 0 else ("bogus" if i % 29 == 0 else ACCEPTED[i % 4])
        code = None if i % 13 == 0 else (f"X{i % 7}" if i % 31 == 0 else f"C{i % 50}")
        out.append({"_phlo_row_id": f"r{i}", "category": category, "code": code})
    return out


def write(
    path: Path, data: list[dict[str, Any]], schema: pa.Schema = SCHEMA, **options: Any
) -> str:
    pq.write_table(pa.Table.from_pylist(data, schema=schema), path, **options)
    return str(path)


def encodings(path: str, column: str) -> list[set[str]]:
    """The encodings of `column`'s chunk in each row group."""
    meta = pq.ParquetFile(path).metadata
    index = SCHEMA.get_field_index(column)
    return [set(meta.row_group(g).column(index).encodings) for g in range(meta.num_row_groups)]


def test_checks_count_exactly_over_dictionary_fallback_plain_pyiceberg_and_phlo_files(
    lh: phlo.Lakehouse, tmp_path: Path
) -> None:
    lh.create_table("raw.codes", SCHEMA)
    model: list[dict[str, Any]] = []
    files = []
    # Dictionary-encoded, three row groups (a dictionary each).
    part = rows(0, 3000)
    files.append(write(tmp_path / "dictionary.parquet", part, row_group_size=1000))
    model += part
    # A dictionary page limit so small the writer falls back to plain mid-chunk.
    part = rows(3000, 2000)
    files.append(write(tmp_path / "fallback.parquet", part, dictionary_pagesize_limit=64))
    model += part
    # Plain only.
    part = rows(5000, 1500)
    files.append(write(tmp_path / "plain.parquet", part, use_dictionary=False))
    model += part
    # Strings with 64-bit offsets (as Polars writes them), dictionary-encoded and plain.
    large = pa.schema([pa.field(f.name, pa.large_string()) for f in SCHEMA])
    for name, start, dictionary in (("large", 8600, True), ("large_plain", 9400, False)):
        part = rows(start, 800)
        files.append(write(tmp_path / f"{name}.parquet", part, large, use_dictionary=dictionary))
        model += part
    assert all("RLE_DICTIONARY" in e for e in encodings(files[0], "code"))
    assert all("RLE_DICTIONARY" in e for e in encodings(files[1], "code"))
    assert not any("RLE_DICTIONARY" in e for e in encodings(files[2], "code"))
    catalog = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
    # The fallback file alone: its codes are not all dictionary-encoded, so they come as a
    # dictionary of one value per row rather than the file's (partial) dictionary.
    lh.create_table("raw.fallback", SCHEMA)
    catalog.load_table("raw.fallback").add_files([files[1]])
    fallback = lh.table("raw.fallback").scan(["code"], string_dictionaries=True).to_batches()
    assert all(len(b.column(0).dictionary) == b.num_rows for b in fallback)
    pyi = catalog.load_table("raw.codes")
    pyi.add_files(files)
    part = rows(6500, 1200)
    pyi.append(pa.Table.from_pylist(part, schema=SCHEMA))
    model += part
    part = rows(7700, 900)
    lh.table("raw.codes").append(pa.Table.from_pylist(part, schema=SCHEMA))
    model += part

    # The scan really hands the engine the files' dictionaries: far fewer values than rows.
    scan = lh.table("raw.codes").scan(["category"], string_dictionaries=True)
    batches = list(scan.to_batches())
    assert pa.types.is_dictionary(scan.schema.field("category").type)
    assert min(len(b.column(0).dictionary) for b in batches) <= len(ACCEPTED) + 1
    # Narrowing the planned scan (what a quality run reads after metadata answers) keeps them.
    narrowed = lh.table("raw.codes").scan(["category", "code"], string_dictionaries=True)
    narrowed = narrowed.select(["category"])
    assert pa.types.is_dictionary(narrowed.schema.field("category").type)
    read = Counter(v for b in batches for v in b.column(0).to_pylist())
    assert Counter(narrowed.to_arrow().column("category").to_pylist()) == read

    @phlo_quality(
        table="raw.codes",
        checks=[
            AcceptedValuesCheck("category", ACCEPTED),
            PatternCheck("code", PATTERN),
            NullCheck(columns=["category"]),
            UniqueCheck(columns=["code"]),
        ],
        partition_aware=False,
    )
    def codes_quality() -> None: ...

    results = {r.name: r for r in codes_quality.run(lakehouse=lh)}
    failing = failing_rows(model) | {
        "null_check_category": {r["_phlo_row_id"] for r in model if r["category"] is None},
        "unique_check_code": {r["_phlo_row_id"] for r in model},  # every code repeats
    }
    by_id = {r["_phlo_row_id"]: r for r in model}
    for name, ids in failing.items():
        result = results[name]
        assert (result.failed_count, result.total_count) == (len(ids), len(model)), name
        assert not result.passed, name
        assert len(result.sample) == min(20, len(ids)), name
        for sample in result.sample:
            assert sample["_phlo_row_id"] in ids, (name, sample)
            # Sample values leave the engine as plain strings, equal to the rows'.
            for column, value in sample.items():
                assert value == by_id[sample["_phlo_row_id"]][column], (name, sample)


def test_a_dictionary_with_every_value_passing_passes_and_a_later_failing_one_is_counted(
    lh: phlo.Lakehouse,
) -> None:
    """Two phlo files whose dictionaries have the same size: the first all accepted, the second
    with one failing value used by one row. Verdicts of one dictionary must not be reused for
    the other."""
    table = lh.create_table("raw.two", SCHEMA)
    good = [
        {"_phlo_row_id": f"g{i}", "category": ACCEPTED[i % 2], "code": "C1"} for i in range(5000)
    ]
    bad = [
        {"_phlo_row_id": f"b{i}", "category": "view" if i != 4321 else "nope", "code": "C1"}
        for i in range(5000)
    ]
    table.append(pa.Table.from_pylist(good, schema=SCHEMA))

    @phlo_quality(
        table="raw.two",
        checks=[AcceptedValuesCheck("category", ACCEPTED), PatternCheck("category", "[a-z]{4,}$")],
        partition_aware=False,
    )
    def two_quality() -> None: ...

    assert all(r.passed and r.failed_count == 0 for r in two_quality.run(lakehouse=lh))
    table.append(pa.Table.from_pylist(bad, schema=SCHEMA))
    accepted, pattern = two_quality.run(lakehouse=lh)
    assert (accepted.failed_count, accepted.total_count) == (1, 10000)
    assert accepted.sample == [{"_phlo_row_id": "b4321", "category": "nope"}]
    assert pattern.passed and pattern.failed_count == 0
