"""Every Iceberg type PyIceberg writes (decimals narrow and wide, uuid, fixed, binary, time,
timestamps with and without zone, date, boolean, float) kept value for value by phlo's writes:
after a merge, a delete and a compaction, the rows phlo did not change read back from PyIceberg
and DuckDB exactly as PyIceberg wrote them. Also Iceberg format-version 1 tables created by
PyIceberg: phlo refuses to write them (a typed error, nothing changed) and, once upgraded to
v2 in place, writes over their v1 manifests keeping every row."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import duckdb
import pyarrow as pa
import pytest
from pyiceberg.schema import Schema
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    FixedType,
    FloatType,
    LongType,
    StringType,
    TimestampType,
    TimestamptzType,
    TimeType,
    UUIDType,
)
from tests.outside_support import Row, optional, sql_catalog

import phlo
from phlo.errors import InputError

SCHEMA = Schema(
    optional(1, "id", LongType()),
    optional(2, "d1", DecimalType(9, 2)),
    optional(3, "d2", DecimalType(38, 10)),
    optional(4, "u", UUIDType()),
    optional(5, "fx", FixedType(4)),
    optional(6, "bin", BinaryType()),
    optional(7, "tm", TimeType()),
    optional(8, "ts", TimestampType()),
    optional(9, "tz", TimestamptzType()),
    optional(10, "dt", DateType()),
    optional(11, "b", BooleanType()),
    optional(12, "fl", FloatType()),
    optional(13, "note", StringType()),
)


def row(i: int) -> Row:
    return {
        "id": i,
        "d1": decimal.Decimal(f"-{i}.25"),
        "d2": decimal.Decimal(f"1234567890123456789{i}.{i:010d}"),
        "u": uuid.UUID(int=(i + 1) * 2**100 + i),
        "fx": bytes([i, 0, 255, i]),
        "bin": b"\x00\xff" * i,
        "tm": dt.time(23, 59, 59, i),
        "ts": dt.datetime(1969, 12, 31, 23, 59, 59, i),
        "tz": dt.datetime(2262, 1, 1, i, tzinfo=dt.UTC),
        "dt": dt.date(1, 1, i + 1),
        "b": i % 2 == 0,
        "fl": i / 4,
        "note": f"n{i}",
    }


def pyiceberg_rows(lh: phlo.Lakehouse) -> dict[int, Row]:
    rows = sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()
    return {r["id"]: normal(r) for r in rows}


def normal(r: Row) -> Row:
    """A row as comparable values (aware datetimes in UTC, uuids as UUID)."""
    out = dict(r)
    if isinstance(out["u"], bytes):
        out["u"] = uuid.UUID(bytes=out["u"])
    if out["tz"] is not None:
        out["tz"] = out["tz"].astimezone(dt.UTC)
    return out


def duckdb_rows(lh: phlo.Lakehouse) -> dict[int, Row]:
    """DuckDB's reading of the current snapshot's data files (phlo applies no deletes here: the
    writes below are copy-on-write)."""
    files = [f.file.file_path for f in sql_catalog(lh).load_table("raw.t").scan().plan_files()]
    assert all(
        not task.delete_files for task in sql_catalog(lh).load_table("raw.t").scan().plan_files()
    )
    paths = ", ".join(f"'{f.removeprefix('file://')}'" for f in files)
    table = duckdb.sql(f"select id, d1, d2, fx, bin, tm, dt, b from read_parquet([{paths}])")
    return {r["id"]: r for r in table.arrow().read_all().to_pylist()}


DUCKDB_COLUMNS = ["id", "d1", "d2", "fx", "bin", "tm", "dt", "b"]


def assert_kept(lh: phlo.Lakehouse, model: dict[int, Row]) -> None:
    assert pyiceberg_rows(lh) == model
    phlo_rows = {r["id"]: normal(r) for r in lh.table("raw.t").scan().to_arrow().to_pylist()}
    assert phlo_rows == model
    expected = {k: {c: r[c] for c in DUCKDB_COLUMNS} for k, r in model.items()}
    assert duckdb_rows(lh) == expected


@pytest.mark.parametrize("format_version", ["1", "2"])
def test_every_type_pyiceberg_writes_survives_phlo_writes_value_for_value(lh, format_version):
    table = sql_catalog(lh).create_table(
        "raw.t", schema=SCHEMA, properties={"format-version": format_version}
    )
    for part in (range(0, 3), range(3, 6)):
        table.append(pa.Table.from_pylist([row(i) for i in part], schema=table.schema().as_arrow()))
    model = {i: normal(row(i)) for i in range(6)}
    assert_kept(lh, model)

    t = lh.table("raw.t")
    if format_version == "1":
        # phlo refuses to write v1 and changes nothing; upgraded in place (the error's hint),
        # the table's v1 manifests (no sequence numbers) are written over as v2.
        writes = [
            lambda: t.merge(pa.table({"id": [2], "note": ["x"]}), "id"),
            lambda: t.append(pa.table({"id": [2], "note": ["x"]})),
            lambda: t.delete(("id", "=", 3)),
            lambda: t.compact(),
        ]
        for write in writes:
            with pytest.raises(InputError, match="format v1"):
                write()
        assert_kept(lh, model)
        with pytest.raises(InputError, match="format-version"):
            t.set_properties({"format-version": "3"})
        t.set_properties({"format-version": "2"})
        assert sql_catalog(lh).load_table("raw.t").format_version == 2
        assert_kept(lh, model)
    result = t.merge(pa.table({"id": [2, 9], "note": ["changed", "new"]}), "id")
    assert (result.rows_updated, result.rows_inserted) == (1, 1)
    model[2] = {c: None for c in model[2]} | {"id": 2, "note": "changed"}
    model[9] = {c: None for c in model[2]} | {"id": 9, "note": "new"}
    assert_kept(lh, model)

    assert t.delete(("id", "=", 3)).rows_deleted == 1
    del model[3]
    assert_kept(lh, model)

    t.compact()
    assert_kept(lh, model)
    # PyIceberg still appends to the table phlo wrote.
    pyi = sql_catalog(lh).load_table("raw.t")
    pyi.append(pa.Table.from_pylist([row(7)], schema=pyi.schema().as_arrow()))
    model[7] = normal(row(7))
    assert_kept(lh, model)
