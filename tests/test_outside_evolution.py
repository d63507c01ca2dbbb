"""One table evolved every way PyIceberg can (int → long and float → double promotion, a rename,
a column dropped and added again under its old name, the identity partition on a date replaced
by a bucket on the key, a Parquet file without field ids added through the name mapping, NaN
and long strings), then written by phlo (merge, deletes by partition and by value,
compaction). After every step phlo's scans (plain, with string dictionaries, narrowed by
`select`), its filters, PyIceberg's scan and the quality checks (metadata-answered or not, per
partition) all agree with a plain-Python model of the rows."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import BucketTransform, IdentityTransform
from pyiceberg.types import (
    DateType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    StringType,
)
from tests.outside_support import Row, optional, sql_catalog

import phlo
from phlo import CountCheck, NullCheck, RangeCheck, UniqueCheck, phlo_quality

Model = dict[int, Row]
COLUMNS = ["id", "n", "f", "d", "s"]
D1, D2 = dt.date(2024, 1, 1), dt.date(2024, 1, 2)


def evolve(lh: phlo.Lakehouse, tmp_path: Path) -> Model:
    """Builds `raw.t` through PyIceberg alone; returns the model of its rows."""
    schema = Schema(
        optional(1, "id", LongType()),
        optional(2, "n", IntegerType()),
        optional(3, "f", FloatType()),
        optional(4, "s", StringType()),
        optional(5, "d", DateType()),
    )
    spec = PartitionSpec(PartitionField(5, 1000, IdentityTransform(), "d"))
    table = sql_catalog(lh).create_table("raw.t", schema=schema, partition_spec=spec)
    first = [
        {"id": i, "n": i * 10, "f": i + 0.5, "s": f"old{i}", "d": D1 if i < 3 else D2}
        for i in range(6)
    ]
    table.append(pa.Table.from_pylist(first, schema=table.schema().as_arrow()))
    # A file of another writer without field ids: read through the table's name mapping.
    unnamed = [{"id": 10, "n": 5, "f": 1.0, "s": None, "d": D2}]
    no_ids = pa.schema(
        [
            ("id", pa.int64()),
            ("n", pa.int32()),
            ("f", pa.float32()),
            ("s", pa.string()),
            ("d", pa.date32()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(unnamed, schema=no_ids), tmp_path / "plain.parquet")
    table.add_files([str(tmp_path / "plain.parquet")])
    with table.update_schema() as update:
        update.update_column("n", LongType())
        update.update_column("f", DoubleType())
        update.rename_column("s", "old_s")
    with table.update_schema() as update:
        update.delete_column("old_s")
    with table.update_schema() as update:
        update.add_column("s", StringType())
    with table.update_spec() as update:
        update.remove_field("d")
        update.add_field("id", BucketTransform(4), "id_bucket")
    second = [
        {
            "id": i,
            "n": 2**40 + i,
            "f": math.nan if i == 7 else float(i),
            "s": "x" * 40 if i % 2 else None,
            "d": D1,
        }
        for i in range(6, 10)
    ]
    table.append(pa.Table.from_pylist(second, schema=table.schema().as_arrow()))
    model = {r["id"]: {**r, "s": None} for r in [*first, *unnamed]}
    model.update({r["id"]: r for r in second})
    return model


def canonical(rows: list[Row]) -> list[tuple[Any, ...]]:
    """Rows as comparable tuples (NaN equal to itself), sorted by key."""

    def cell(v: Any) -> Any:
        return "NaN" if isinstance(v, float) and math.isnan(v) else v

    return sorted(tuple(cell(r[c]) for c in COLUMNS) for r in rows)


def plain(table: pa.Table) -> list[Row]:
    """Rows of an Arrow table, dictionary columns decoded."""
    return table.cast(
        pa.schema(
            [
                pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                for f in table.schema
            ]
        )
    ).to_pylist()


def missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


MATCHES = {
    ("d", "=", "2024-01-02"): lambda r: r["d"] == D2,
    ("n", ">", 100): lambda r: r["n"] is not None and r["n"] > 100,
    ("f", "<", 3.0): lambda r: not missing(r["f"]) and r["f"] < 3.0,
    ("s", "is null", None): lambda r: r["s"] is None,
    ("id", "in", (1, 7, 10)): lambda r: r["id"] in (1, 7, 10),
}


def quality_answers(rows: list[Row]) -> dict[str, tuple[int, int]]:
    """(failed, total) per check, as pandas would count them over `rows`."""
    return {
        "null_check_n": (sum(missing(r["n"]) for r in rows), len(rows)),
        "null_check_s": (sum(missing(r["s"]) for r in rows), len(rows)),
        "null_check_f": (sum(missing(r["f"]) for r in rows), len(rows)),
        "range_check_n": (
            sum(not missing(r["n"]) and not 0 <= r["n"] <= 100 for r in rows),
            len(rows),
        ),
        "range_check_f": (
            sum(not missing(r["f"]) and not 0 <= r["f"] <= 5 for r in rows),
            len(rows),
        ),
        "count_check": (0 if rows else 1, len(rows)),
        "unique_check_id": (0, len(rows)),
    }


@phlo_quality(
    table="raw.t",
    partition_column="d",
    checks=[
        NullCheck(columns=["n"]),
        NullCheck(columns=["s"]),
        NullCheck(columns=["f"]),
        RangeCheck(column="n", min_value=0, max_value=100),
        RangeCheck(column="f", min_value=0, max_value=5),
        CountCheck(min_rows=1),
        UniqueCheck(columns=["id"]),
    ],
)
def evolved_quality() -> None: ...


def assert_agrees(lh: phlo.Lakehouse, model: Model) -> None:
    table = lh.table("raw.t")
    expected = canonical(list(model.values()))
    for dictionaries in (False, True):
        scan = table.scan(string_dictionaries=dictionaries)
        assert canonical(plain(scan.to_arrow())) == expected, dictionaries
        narrowed = table.scan(string_dictionaries=dictionaries).select(["s", "id"]).to_arrow()
        assert narrowed.column_names == ["s", "id"]
        assert sorted(plain(narrowed), key=lambda r: r["id"]) == sorted(
            ({"s": r["s"], "id": r["id"]} for r in model.values()), key=lambda r: r["id"]
        )
    for (column, op, value), match in MATCHES.items():
        filter = (column, op) if value is None else (column, op, value)
        got = table.scan(filter=filter).to_arrow().column("id").to_pylist()
        assert sorted(got) == sorted(k for k, r in model.items() if match(r)), filter
    assert canonical(sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()) == expected
    for partition in (None, "2024-01-01", "2024-01-02"):
        rows = [r for r in model.values() if partition is None or str(r["d"]) == partition]
        results = evolved_quality.run(partition, lakehouse=lh)
        got = {r.name: (r.failed_count, r.total_count) for r in results}
        assert got == quality_answers(rows), partition


@pytest.fixture
def evolved(lh: phlo.Lakehouse, tmp_path: Path) -> Model:
    return evolve(lh, tmp_path)


def test_phlo_writes_over_a_table_pyiceberg_evolved_every_way(lh, evolved):
    model = evolved
    assert_agrees(lh, model)

    batch = [
        {"id": 2, "n": 5, "f": 1.0, "s": "m", "d": D2},
        {"id": 20, "n": 7, "f": 2.0, "s": "new", "d": D1},
    ]
    lh.table("raw.t").merge(pa.Table.from_pylist(batch), "id")
    model.update({r["id"]: r for r in batch})
    assert_agrees(lh, model)

    # Old-spec files are identity-partitioned on d (dropped unread), new-spec ones are not.
    lh.table("raw.t").delete(("d", "=", "2024-01-02"))
    model = {k: r for k, r in model.items() if r["d"] != D2}
    assert_agrees(lh, model)

    lh.table("raw.t").delete(("n", ">", 2**40 + 7))
    model = {k: r for k, r in model.items() if not r["n"] > 2**40 + 7}
    assert_agrees(lh, model)

    lh.table("raw.t").compact()
    assert_agrees(lh, model)
