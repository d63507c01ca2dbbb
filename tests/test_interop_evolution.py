"""Tables evolved by another engine (PyIceberg, on the same catalog) keep reading right in phlo:
columns are matched by Iceberg field id, never by name. Every result is compared with a plain
Python model of the table (a dict by key) and read back by both phlo and PyIceberg."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.types import LongType, StringType

import phlo

Model = dict[Any, dict[str, Any]]
DEDUPE = [
    pytest.param({}, id="dedupe"),
    pytest.param({"deduplication_method": None}, id="no-dedupe"),
]


def pyiceberg_catalog(lh: phlo.Lakehouse) -> SqlCatalog:
    return SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)


def keyed(rows: list[dict[str, Any]], key: tuple[str, ...]) -> Model:
    return {tuple(r[k] for k in key): r for r in rows}


def assert_reads(lh: phlo.Lakehouse, name: str, model: Model, key: tuple[str, ...] = ("id",)):
    """phlo and PyIceberg both read exactly the model."""
    expected = sorted(model.values(), key=lambda r: tuple(r[k] for k in key))
    columns = list(next(iter(model.values())))
    for reader, table in [
        ("phlo", lh.table(name).scan().to_arrow()),
        ("pyiceberg", pyiceberg_catalog(lh).load_table(name).scan().to_arrow()),
    ]:
        assert table.column_names == columns, reader
        got = sorted(table.to_pylist(), key=lambda r: tuple(r[k] for k in key))
        assert got == expected, reader


def upsert(model: Model, rows: list[dict[str, Any]], key: tuple[str, ...] = ("id",)) -> Model:
    """The model of a merge: rows replace the table's rows of their key; the batch's missing
    columns are null."""
    columns = list(next(iter(model.values())))
    out = dict(model)
    for row in rows:
        out[tuple(row[k] for k in key)] = {c: row.get(c) for c in columns}
    return out


def create(lh: phlo.Lakehouse, schema: dict[str, pa.DataType], rows: list[dict[str, Any]]):
    table = lh.create_table("raw.t", pa.schema([pa.field(n, t) for n, t in schema.items()]))
    table.append(pa.Table.from_pylist(rows, schema=table.schema))
    return table


ABC = [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]


@pytest.mark.parametrize("config", DEDUPE)
def test_merge_after_a_rename_keeps_the_values_of_untouched_rows(lh, config):
    table = create(lh, {"id": pa.int64(), "v": pa.string()}, ABC)
    pyiceberg_catalog(lh).load_table("raw.t").update_schema().rename_column("v", "w").commit()
    batch = [{"id": 2, "w": "B"}, {"id": 4, "w": "D"}]
    result = table.merge(pa.Table.from_pylist(batch), "id", merge_config=config)
    assert (result.rows_updated, result.rows_inserted) == (1, 1)
    model = upsert(keyed([{"id": r["id"], "w": r["v"]} for r in ABC], ("id",)), batch)
    assert_reads(lh, "raw.t", model)


@pytest.mark.parametrize("config", DEDUPE)
def test_a_column_dropped_and_added_again_reads_null_in_old_rows(lh, config):
    table = create(lh, {"id": pa.int64(), "v": pa.string()}, ABC)
    pyi = pyiceberg_catalog(lh).load_table("raw.t")
    pyi.update_schema().delete_column("v").commit()
    pyi.update_schema().add_column("v", StringType()).commit()
    batch = [{"id": 2, "v": "B"}, {"id": 4, "v": "D"}]
    table.merge(pa.Table.from_pylist(batch), "id", merge_config=config)
    model = upsert(keyed([{"id": r["id"], "v": None} for r in ABC], ("id",)), batch)
    assert_reads(lh, "raw.t", model)


def test_a_column_phlo_adds_after_a_drop_gets_a_fresh_field_id(lh):
    table = create(lh, {"id": pa.int64(), "v": pa.string()}, ABC)
    pyiceberg_catalog(lh).load_table("raw.t").update_schema().delete_column("v").commit()
    # The table's highest field id is now 1, but id 2 was used: a new column must not reuse it.
    table.append(pa.table({"id": [4], "x": ["new"]}), schema_evolution="evolve")
    assert pyiceberg_catalog(lh).load_table("raw.t").schema().find_field("x").field_id == 3
    batch = [{"id": 1, "x": "one"}]
    table.merge(pa.Table.from_pylist(batch), "id", schema_evolution="evolve")
    model = keyed([{"id": r["id"], "x": None} for r in ABC] + [{"id": 4, "x": "new"}], ("id",))
    assert_reads(lh, "raw.t", upsert(model, batch))


@pytest.mark.parametrize("config", DEDUPE)
def test_added_columns_and_promoted_types_read_through_a_merge(lh, config):
    table = create(
        lh,
        {"id": pa.int64(), "n": pa.int32(), "v": pa.string()},
        [{"id": i, "n": i * 10, "v": f"r{i}"} for i in range(1, 5)],
    )
    pyi = pyiceberg_catalog(lh).load_table("raw.t")
    with pyi.update_schema() as update:
        update.update_column("n", field_type=LongType())
        update.rename_column("n", "amount")
        update.add_column("note", StringType())
    batch = [
        {"id": 2, "amount": 2**40, "v": "big", "note": "x"},
        {"id": 9, "amount": -1, "v": "new"},
    ]
    table.merge(pa.Table.from_pylist(batch), "id", merge_config=config)
    model = keyed(
        [{"id": i, "amount": i * 10, "v": f"r{i}", "note": None} for i in range(1, 5)], ("id",)
    )
    assert_reads(lh, "raw.t", upsert(model, batch))
    assert table.schema.field("amount").type == pa.int64()


def test_time_travel_reads_each_snapshot_with_its_own_schema(lh):
    table = create(lh, {"id": pa.int64(), "v": pa.string()}, ABC)
    before = table.current_snapshot_id
    pyi = pyiceberg_catalog(lh).load_table("raw.t")
    pyi.update_schema().rename_column("v", "w").commit()
    table.merge(pa.table({"id": [1], "w": ["A"]}), "id")
    old = table.scan(snapshot_id=before).to_arrow()
    assert sorted(old.to_pylist(), key=lambda r: r["id"]) == ABC
    pyi_old = pyiceberg_catalog(lh).load_table("raw.t").scan(snapshot_id=before).to_arrow()
    assert sorted(pyi_old.to_pylist(), key=lambda r: r["id"]) == ABC
    renamed = keyed([{"id": r["id"], "w": r["v"]} for r in ABC], ("id",))
    assert_reads(lh, "raw.t", upsert(renamed, [{"id": 1, "w": "A"}]))


def test_diff_rows_matches_columns_by_field_id(lh):
    table = create(lh, {"id": pa.int64(), "v": pa.string()}, ABC)
    lh.create_tag("before")
    pyi = pyiceberg_catalog(lh).load_table("raw.t")
    pyi.update_schema().rename_column("v", "w").commit()
    # PyIceberg rewrites the file without key 2, then adds 2 and 4: keys 1 and 3 are unchanged.
    pyi.delete("id == 2")
    pyi.append(
        pa.Table.from_pylist([{"id": 2, "w": "B"}, {"id": 4, "w": "D"}], pyi.schema().as_arrow())
    )
    diff = lh.diff_rows("raw.t", "before", "main", key="id")
    assert (diff.added, diff.removed, diff.changed) == (1, 0, 1)
    assert diff.changed_sample.to_pylist() == [{"id": 2, "w": "B"}]
    assert diff.added_sample.to_pylist() == [{"id": 4, "w": "D"}]
    assert table.scan().to_arrow().num_rows == 4


REGIONS = [{"id": i, "region": ("eu", "us")[i % 2], "v": f"r{i}"} for i in range(6)]


def test_merge_after_partition_spec_evolution_with_a_key_outside_the_partition(lh):
    table = create(lh, {"id": pa.int64(), "region": pa.string(), "v": pa.string()}, REGIONS)
    pyiceberg_catalog(lh).load_table("raw.t").update_spec().add_identity("region").commit()
    later = [{"id": i, "region": ("eu", "us")[i % 2], "v": f"r{i}"} for i in range(6, 10)]
    table.append(pa.Table.from_pylist(later, schema=table.schema))
    batch = [{"id": 1, "region": "us", "v": "one"}, {"id": 7, "region": "us", "v": "seven"}]
    result = table.merge(pa.Table.from_pylist(batch), "id")
    assert (result.rows_updated, result.rows_inserted) == (2, 0)
    assert_reads(lh, "raw.t", upsert(keyed(REGIONS + later, ("id",)), batch))


def test_merge_after_partition_spec_evolution_with_the_partition_in_the_key(lh):
    table = create(lh, {"id": pa.int64(), "region": pa.string(), "v": pa.string()}, REGIONS)
    pyiceberg_catalog(lh).load_table("raw.t").update_spec().add_identity("region").commit()
    later = [{"id": i, "region": ("eu", "us")[i % 2], "v": f"r{i}"} for i in range(6, 10)]
    table.append(pa.Table.from_pylist(later, schema=table.schema))  # one file per region
    key = ("id", "region")  # id first: its min/max statistics cannot rule out the "us" file
    batch = [{"id": 0, "region": "eu", "v": "zero"}, {"id": 8, "region": "eu", "v": "eight"}]
    result = table.merge(pa.Table.from_pylist(batch), list(key))
    assert (result.rows_updated, result.rows_inserted) == (2, 0)
    # The file of the first (unpartitioned) spec must be read; of the current spec's files,
    # only the "eu" one.
    assert result.files_scanned == 2
    assert_reads(lh, "raw.t", upsert(keyed(REGIONS + later, key), batch, key), key)
