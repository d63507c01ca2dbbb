"""Parquet files written differently from phlo's own, added to a table by PyIceberg's
`add_files` (which records their statistics from the footers, long strings' bounds truncated to
16 characters): every codec pyarrow writes and zstd at two levels, data page v2, delta and
byte-stream-split encodings without dictionaries, no statistics at all, a row group per row,
64-bit offsets and string views, many tiny pages, and files DuckDB wrote with its own encodings
and row groups. Strings share long prefixes (so a filter's value lies between the truncated
bounds, or equal to them) and floats hold NaN, -0.0 and nulls (so bounds leave values out).
phlo's scans, filtered or not, must read each row as PyIceberg does and as a plain model says;
then merges in both write modes, a delete and compaction keep every row."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from operator import eq, ge, gt, le, lt
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.schema import Schema
from pyiceberg.table.name_mapping import create_mapping_from_schema
from pyiceberg.typedef import Record
from pyiceberg.types import (
    BinaryType,
    DoubleType,
    LongType,
    StringType,
    TimestampType,
)
from tests.duckdb_support import duckdb_rest
from tests.outside_files_support import commit_deletes, position_deletes
from tests.outside_support import optional, sql_catalog

import phlo
from phlo import NullCheck, PatternCheck, RangeCheck, phlo_quality
from phlo.catalog_server import CatalogServer

SCHEMA = Schema(
    optional(1, "id", LongType()),
    optional(2, "s", StringType()),
    optional(3, "f", DoubleType()),
    optional(4, "b", BinaryType()),
)
Row = dict[str, Any]
# 15 characters, so the 16th (where PyIceberg truncates bounds) is the varying one, and one
# multi-byte character: truncation cuts whole characters.
PREFIX = "k" * 14 + "é"


def row(i: int) -> Row:
    tail = ["a", "b", "ü", "\U0001f600"][i % 4]
    return {
        "id": i,
        "s": None if i % 11 == 5 else f"{PREFIX}{tail}{'z' * (i % 3)}{i:04d}",
        "f": [math.nan, -0.0, 0.0, None, i / 4][i % 5],
        "b": bytes([255, i % 256]) * 10,
    }


WRITES: dict[str, dict[str, Any]] = {
    "gzip": {"compression": "gzip"},
    "brotli": {"compression": "brotli"},
    "lz4": {"compression": "lz4"},
    "snappy": {"compression": "snappy"},
    "uncompressed": {"compression": "none"},
    "zstd-1": {"compression": "zstd", "compression_level": 1},
    "zstd-19": {"compression": "zstd", "compression_level": 19},
    "page-v2": {"data_page_version": "2.0", "compression": "zstd"},
    "delta": {
        "use_dictionary": False,
        "column_encoding": {
            "id": "DELTA_BINARY_PACKED",
            "s": "DELTA_BYTE_ARRAY",
            "f": "BYTE_STREAM_SPLIT",
            "b": "DELTA_LENGTH_BYTE_ARRAY",
        },
        "data_page_version": "2.0",
    },
    "no-statistics": {"write_statistics": False},
    "row-per-group": {"row_group_size": 1},
    "tiny-pages": {"data_page_size": 64, "write_batch_size": 4, "use_dictionary": False},
}
TYPES: dict[str, dict[str, pa.DataType]] = {
    "large": {"s": pa.large_string(), "b": pa.large_binary()},
}
ROWS_PER_FILE = 24


def arrow_rows(rows: list[Row], types: dict[str, pa.DataType]) -> pa.Table:
    fields = {"id": pa.int64(), "s": pa.string(), "f": pa.float64(), "b": pa.binary()} | types
    return pa.table({c: pa.array([r[c] for r in rows], t) for c, t in fields.items()})


def written(tmp_path: Path) -> tuple[list[str], dict[int, Row]]:
    """The files, one per way of writing, and the model of their rows."""
    paths, model, start = [], {}, 0
    variants: list[tuple[str, dict[str, Any], dict[str, pa.DataType]]] = [
        (name, options, {}) for name, options in WRITES.items()
    ]
    variants += [(name, {}, types) for name, types in TYPES.items()]
    for name, options, types in variants:
        rows = [row(i) for i in range(start, start + ROWS_PER_FILE)]
        path = tmp_path / f"{name}.parquet"
        pq.write_table(arrow_rows(rows, types), path, **options)
        paths.append(str(path))
        model.update({r["id"]: r for r in rows})
        start += ROWS_PER_FILE
    for name, options in [
        ("duckdb-v2", "PARQUET_VERSION V2, ROW_GROUP_SIZE 7, COMPRESSION zstd"),
        ("duckdb-v1", "ROW_GROUP_SIZE 5, COMPRESSION uncompressed"),
    ]:
        rows = [row(i) for i in range(start, start + ROWS_PER_FILE)]
        path = tmp_path / f"{name}.parquet"
        data = arrow_rows(rows, {})  # noqa: F841  (read by DuckDB by name)
        duckdb.sql(f"COPY (SELECT * FROM data) TO '{path}' (FORMAT parquet, {options})")
        paths.append(str(path))
        model.update({r["id"]: r for r in rows})
        start += ROWS_PER_FILE
    return paths, model


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and str(a) == str(b))
    return a == b


def assert_rows(got: list[Row], expected: list[Row], what: str) -> None:
    got = sorted(got, key=lambda r: r["id"])
    expected = sorted(expected, key=lambda r: r["id"])
    assert [r["id"] for r in got] == [r["id"] for r in expected], what
    for g, e in zip(got, expected, strict=True):
        assert all(same(g[c], e[c]) for c in e), (what, g, e)


def matches(r: Row, probe: tuple) -> bool:
    """SQL semantics: null matches no comparison, NaN only `!=`, -0.0 equals 0.0."""
    column, op, value = probe
    got = r[column]
    if got is None:
        return False
    if isinstance(got, float) and math.isnan(got):
        return op == "!="
    return {
        "=": got == value,
        "!=": got != value,
        "<": got < value,
        "<=": got <= value,
        ">": got > value,
        ">=": got >= value,
    }[op]


def probes(model: dict[int, Row]) -> list[tuple]:
    strings = sorted({r["s"] for r in model.values() if r["s"] is not None})
    # Values at, just below and just above the truncated bounds, and the extremes.
    near = [PREFIX, PREFIX + "a", PREFIX + "b", PREFIX[:-1], PREFIX + "\U0010ffff"]
    near += [strings[0], strings[-1], strings[len(strings) // 2]]
    out: list[tuple] = [("s", op, v) for v in near for op in ("=", "<", "<=", ">", ">=")]
    out += [("f", op, v) for v in (0.0, -0.0, 1.5, 1e9) for op in ("=", "!=", "<", ">=")]
    out += [("id", "<", 30), ("id", ">=", 250)]
    return out


def assert_reads(
    lh: phlo.Lakehouse, model: dict[int, Row], step: str, pyiceberg: bool = True
) -> None:
    table = lh.table("raw.t")
    assert_rows(table.scan().to_arrow().to_pylist(), list(model.values()), f"phlo {step}")
    if pyiceberg:
        rows = sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()
        assert_rows(rows, list(model.values()), f"PyIceberg {step}")
    assert_quality(lh, model, step)
    scan = table.scan(string_dictionaries=True).to_arrow().to_pylist()
    assert_rows(scan, list(model.values()), f"phlo {step} (string dictionaries)")
    for probe in probes(model):
        got = table.scan(filter=probe).to_arrow().to_pylist()
        expected = [r for r in model.values() if matches(r, probe)]
        assert_rows(got, expected, f"phlo {step} {probe}")


@phlo_quality(
    table="raw.t",
    full_table=True,
    checks=[
        NullCheck(columns=["s"]),
        NullCheck(columns=["f"]),
        PatternCheck("s", "k{14}é[ab]"),
        RangeCheck(column="f", min_value=0, max_value=5),
    ],
)
def file_quality() -> None: ...


def assert_quality(lh: phlo.Lakehouse, model: dict[int, Row], step: str) -> None:
    """The checks' counts as pandas would count the model's rows (NaN is missing), whether
    answered from statistics, dictionary and data pages, or rows."""
    rows = list(model.values())

    def missing(v: Any) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v))

    expected = {
        "null_check_s": sum(missing(r["s"]) for r in rows),
        "null_check_f": sum(missing(r["f"]) for r in rows),
        "pattern_check_s": sum(
            r["s"] is not None and not re.match("k{14}é[ab]", r["s"]) for r in rows
        ),
        "range_check_f": sum(not missing(r["f"]) and not 0 <= r["f"] <= 5 for r in rows),
    }
    got = {r.name: r.failed_count for r in file_quality.run(lakehouse=lh)}
    assert got == expected, step


@pytest.mark.parametrize("mode", ["copy-on-write", "merge-on-read"])
def test_parquet_files_written_every_other_way_read_and_write_as_their_rows(
    lh: phlo.Lakehouse, tmp_path: Path, mode: str
):
    iceberg = sql_catalog(lh).create_table("raw.t", schema=SCHEMA)
    paths, model = written(tmp_path)
    iceberg.add_files(paths)
    assert_reads(lh, model, "after add_files")
    # One position delete file over every file, at and around row group boundaries (rows per
    # group: 1, 5, 7 or the whole file).
    positions = [0, 4, 5, 6, 7, 13, ROWS_PER_FILE - 1]
    deleted = [(p, n) for p in paths for n in positions]
    commit_deletes(iceberg, [position_deletes(iceberg, deleted)])
    for path_index in range(len(paths)):
        for n in positions:
            del model[path_index * ROWS_PER_FILE + n]
    assert_reads(lh, model, "after position deletes")

    t = lh.table("raw.t")
    # One row in each file, with values next to those in the files.
    changed = [
        {"id": i, "s": f"{PREFIX}a", "f": -0.0, "b": b"\x00"}
        for i in range(3, len(model), ROWS_PER_FILE)
    ]
    changed.append({"id": 10_000, "s": PREFIX, "f": math.nan, "b": None})
    result = t.merge(pa.Table.from_pylist(changed, schema=t.schema), "id", write_mode=mode)
    assert (result.rows_updated, result.rows_inserted) == (len(changed) - 1, 1)
    model.update({r["id"]: r for r in changed})
    assert_reads(lh, model, "after a merge")

    probe = ("s", ">=", f"{PREFIX}\U0001f600")
    gone = [k for k, r in model.items() if matches(r, probe)]
    assert t.delete(probe, write_mode=mode).rows_deleted == len(gone)
    for k in gone:
        del model[k]
    assert_reads(lh, model, "after a delete")

    t.compact(target_file_size=1 << 30)
    assert_reads(lh, model, "after compaction")


def test_rows_deleted_by_position_are_skipped_in_delta_chunks_the_reader_can_skip(
    lh: phlo.Lakehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """DELTA_BINARY_PACKED chunks under position deletes: pyarrow's (miniblocks of 32 or 64
    values) have their deleted rows skipped like any other chunk's; DuckDB's V2 ones (256
    values per miniblock, which arrow-rs cannot skip in) are decoded whole, deleted rows left
    out afterwards. Failpoint `read.decode-whole`, armed, fails the decode-whole path: which
    path a file takes is seen, and its rows are right either way."""
    rows = [row(i) for i in range(1000)]
    data = arrow_rows(rows, {})
    written_by = {"pyarrow": tmp_path / "pyarrow.parquet", "duckdb": tmp_path / "duckdb.parquet"}
    pq.write_table(
        data,
        written_by["pyarrow"],
        use_dictionary=False,
        column_encoding={"id": "DELTA_BINARY_PACKED"},
        row_group_size=400,
    )
    duckdb.sql(
        f"COPY (SELECT * FROM data) TO '{written_by['duckdb']}' "
        "(FORMAT parquet, PARQUET_VERSION V2, ROW_GROUP_SIZE 400)"
    )
    catalog = sql_catalog(lh)
    deleted = [n for n in range(1000) if n % 7 == 3 or 500 <= n < 700]
    for writer, path in written_by.items():
        assert (
            "DELTA_BINARY_PACKED" in pq.ParquetFile(path).metadata.row_group(0).column(0).encodings
        )
        table = catalog.create_table(f"raw.{writer}", schema=SCHEMA)
        table.add_files([str(path)])
        commit_deletes(table, [position_deletes(table, [(str(path), n) for n in deleted])])
    catalog.engine.dispose()
    expected = [r for r in rows if r["id"] not in set(deleted)]
    monkeypatch.setenv("PHLO_FAILPOINTS", "read.decode-whole")
    assert_rows(lh.table("raw.pyarrow").scan().to_arrow().to_pylist(), expected, "pyarrow's")
    with pytest.raises(phlo.errors.StorageError, match=r"read\.decode-whole"):
        lh.table("raw.duckdb").scan().to_arrow()
    monkeypatch.delenv("PHLO_FAILPOINTS")
    assert_rows(lh.table("raw.duckdb").scan().to_arrow().to_pylist(), expected, "DuckDB's")


def test_string_views_are_read_as_strings(lh: phlo.Lakehouse, tmp_path: Path):
    """Arrow's string and binary views (pyarrow writes them as plain byte arrays, with the
    view type in the footer's Arrow schema). PyIceberg 0.12 cannot read them next to other
    files, so phlo alone is checked until its compaction rewrote them."""
    iceberg = sql_catalog(lh).create_table("raw.t", schema=SCHEMA)
    rows = [row(i) for i in range(40)]
    path = tmp_path / "view.parquet"
    pq.write_table(arrow_rows(rows, {"s": pa.string_view(), "b": pa.binary_view()}), path)
    iceberg.add_files([str(path)])
    model = {r["id"]: r for r in rows}
    assert_reads(lh, model, "string views", pyiceberg=False)
    t = lh.table("raw.t")
    t.merge(pa.Table.from_pylist([{"id": 1, "s": "x"}, {"id": 99, "s": "y"}]), "id")
    model.update({1: {"id": 1, "s": "x", "f": None, "b": None}})
    model[99] = {"id": 99, "s": "y", "f": None, "b": None}
    assert_reads(lh, model, "string views after a merge", pyiceberg=False)
    t.compact(target_file_size=1 << 30)
    assert_reads(lh, model, "string views after compaction")


def test_int96_timestamps_of_migrated_files_keep_every_date(lh: phlo.Lakehouse, tmp_path: Path):
    """Spark's legacy INT96 timestamps, in a file registered as a table's (as Iceberg's
    migrate and add_files procedures do; PyIceberg's add_files refuses them), hold dates
    outside the nanosecond range (1677-2262): phlo reads them to the microsecond, writes them
    as Iceberg timestamps, and then PyIceberg (which misreads the INT96 file itself) agrees."""
    iceberg = sql_catalog(lh).create_table(
        "raw.t",
        schema=Schema(
            optional(1, "id", LongType()),
            optional(2, "ts", TimestampType()),
        ),
    )
    times = [
        dt.datetime(2024, 1, 1, 1, 2, 3, 456789),
        dt.datetime(1000, 1, 1),
        dt.datetime(2500, 6, 1, 0, 0, 0, 1),
        None,
    ]
    path = tmp_path / "int96.parquet"
    data = pa.table({"id": list(range(len(times))), "ts": pa.array(times, pa.timestamp("us"))})
    pq.write_table(data, path, use_deprecated_int96_timestamps=True)
    file = DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=str(path),
        file_format=FileFormat.PARQUET,
        partition=Record(),
        record_count=len(times),
        file_size_in_bytes=path.stat().st_size,
    )
    with iceberg.transaction() as tx:
        tx.set_properties(
            {
                "schema.name-mapping.default": create_mapping_from_schema(
                    iceberg.schema()
                ).model_dump_json()
            }
        )
        with tx.update_snapshot().fast_append() as append:
            append.append_data_file(file)
    model = {i: {"id": i, "ts": t} for i, t in enumerate(times)}
    t = lh.table("raw.t")
    assert sorted(t.scan().to_arrow().to_pylist(), key=lambda r: r["id"]) == list(model.values())
    old = t.scan(filter=("ts", "<", dt.datetime(1677, 1, 1))).to_arrow().to_pylist()
    assert old == [model[1]]
    t.merge(pa.table({"id": [0], "ts": pa.array([dt.datetime(1, 1, 1)], pa.timestamp("us"))}), "id")
    model[0] = {"id": 0, "ts": dt.datetime(1, 1, 1)}
    assert sorted(t.scan().to_arrow().to_pylist(), key=lambda r: r["id"]) == list(model.values())
    t.compact(target_file_size=1 << 30)
    for rows in (t.scan().to_arrow(), sql_catalog(lh).load_table("raw.t").scan().to_arrow()):
        assert sorted(rows.to_pylist(), key=lambda r: r["id"]) == list(model.values())


def test_statistics_duckdb_writes_prune_no_matching_row(lh: phlo.Lakehouse):
    """DuckDB (through `phlo catalog serve`) writes decimals as 32- and 64-bit integers,
    timestamps, dates and floats with statistics of its own, in one file per INSERT: phlo's
    filters, judged on those statistics file by file, return exactly the matching rows."""
    columns = (
        "id BIGINT, d1 DECIMAL(9,2), d2 DECIMAL(18,3), d3 DECIMAL(38,5), ts TIMESTAMP, "
        "tz TIMESTAMPTZ, day DATE, s VARCHAR, f FLOAT, i INTEGER"
    )
    values = (
        "i, (i * 1.25 - 50)::DECIMAL(9,2), (i * 1000.125 - 3000)::DECIMAL(18,3), "
        "(i * 12345678901234.5 - 1000000000000000)::DECIMAL(38,5), "
        "TIMESTAMP '2024-01-01' + i * INTERVAL 1 HOUR, "
        "TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL 1 DAY, "
        "DATE '2024-01-01' + i::INTEGER, 'str' || i, (i / 3.0)::FLOAT, (i - 50)::INTEGER"
    )
    inserts = [
        f"INSERT INTO lake.raw.t SELECT {values} FROM range({lo}, {lo + 25}) t(i)"
        for lo in range(0, 100, 25)
    ]
    with CatalogServer(lh, port=0) as server:
        duckdb_rest(server.uri, "main", [f"CREATE TABLE lake.raw.t ({columns})", *inserts])
    table = lh.table("raw.t")
    rows = table.scan().to_arrow().to_pylist()
    assert sorted(r["id"] for r in rows) == list(range(100))
    assert len(sql_catalog(lh).load_table("raw.t").inspect.data_files()) == 4
    utc = dt.UTC
    probes = [
        ("d1", "=", decimal.Decimal("-46.25")),
        ("d1", ">", decimal.Decimal("10")),
        ("d2", "<", decimal.Decimal("0")),
        ("d2", ">=", decimal.Decimal("90012.25")),
        ("d3", ">=", decimal.Decimal("0")),
        ("d3", "<", decimal.Decimal("-962962963296296.5")),
        ("ts", ">=", dt.datetime(2024, 1, 3)),
        ("ts", "=", dt.datetime(2024, 1, 4, 3)),
        ("tz", "<", dt.datetime(2024, 1, 5, tzinfo=utc)),
        ("tz", ">", dt.datetime(2024, 3, 1, tzinfo=utc)),
        ("day", "=", dt.date(2024, 3, 10)),
        ("day", "<=", dt.date(2024, 1, 10)),
        ("s", "=", "str42"),
        ("s", ">", "str9"),
        ("f", ">", 10.0),
        ("f", "=", 11.0),
        ("i", "<", 0),
        ("i", "=", 49),
    ]
    for column, op, value in probes:
        compare = {"=": eq, "<": lt, "<=": le, ">": gt, ">=": ge}[op]
        expected = sorted(r["id"] for r in rows if compare(r[column], value))
        got = table.scan(filter=(column, op, value)).to_arrow().column("id").to_pylist()
        assert sorted(got) == expected, (column, op, value)
        assert expected, (column, op, value)
