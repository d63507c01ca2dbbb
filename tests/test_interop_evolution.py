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
from phlo import NullCheck, UniqueCheck, phlo_quality

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


# Reads right after another engine evolved the table, before phlo writes to it again: every
# read path (scan, SQL, changes, compaction, merge, row diff) must see the current schema, with
# each file's columns matched by field id.


def assert_every_read(lh: phlo.Lakehouse, name: str, model: Model, key: tuple[str, ...] = ("id",)):
    """phlo's scan, PyIceberg's scan and `lh.sql` all read exactly the model, columns in the
    current schema's order."""
    assert_reads(lh, name, model, key)
    expected = sorted(model.values(), key=lambda r: tuple(r[k] for k in key))
    relation = lh.sql(f"SELECT * FROM {name}")
    columns = relation.columns
    rows = [dict(zip(columns, values, strict=True)) for values in relation.fetchall()]
    assert columns == list(expected[0])
    assert sorted(rows, key=lambda r: tuple(r[k] for k in key)) == expected


def evolve_rename(pyi):
    pyi.update_schema().rename_column("a", "renamed").commit()
    return lambda row: {"id": row["id"], "renamed": row["a"], "b": row["b"], "n": row["n"]}


def evolve_add(pyi):
    pyi.update_schema().add_column("note", StringType()).commit()
    return lambda row: {**row, "note": None}


def evolve_drop(pyi):
    pyi.update_schema().delete_column("a").commit()
    return lambda row: {"id": row["id"], "b": row["b"], "n": row["n"]}


def evolve_drop_and_add_again(pyi):
    pyi.update_schema().delete_column("a").commit()
    pyi.update_schema().add_column("a", StringType()).commit()
    return lambda row: {"id": row["id"], "b": row["b"], "n": row["n"], "a": None}


def evolve_promote(pyi):
    with pyi.update_schema() as update:
        update.update_column("n", field_type=LongType())
    return lambda row: row


def evolve_reorder(pyi):
    # Two string columns change places: files written before keep the old physical order.
    with pyi.update_schema() as update:
        update.move_after("a", "b")
    return lambda row: {"id": row["id"], "b": row["b"], "a": row["a"], "n": row["n"]}


EVOLUTIONS = [
    pytest.param(evolve_rename, id="rename"),
    pytest.param(evolve_add, id="add"),
    pytest.param(evolve_drop, id="drop"),
    pytest.param(evolve_drop_and_add_again, id="drop-and-add-again"),
    pytest.param(evolve_promote, id="promote-int-to-long"),
    pytest.param(evolve_reorder, id="reorder"),
]
ABN = {"id": pa.int64(), "a": pa.string(), "b": pa.string(), "n": pa.int32()}


def abn(ids: range) -> list[dict[str, Any]]:
    return [{"id": i, "a": f"a{i}", "b": f"b{i}", "n": i * 10} for i in ids]


@pytest.mark.parametrize("evolve", EVOLUTIONS)
def test_every_read_sees_another_engines_schema_change_at_once(lh, evolve):
    table = create(lh, ABN, abn(range(0, 3)))
    table.append(pa.Table.from_pylist(abn(range(3, 6)), schema=table.schema))
    to_current = evolve(pyiceberg_catalog(lh).load_table("raw.t"))
    model = keyed([to_current(r) for r in abn(range(0, 6))], ("id",))

    assert_every_read(lh, "raw.t", model)
    assert list(table.scan().schema.names) == list(next(iter(model.values())))
    appended = table.changes(None).to_arrow().to_pylist()
    assert sorted(appended, key=lambda r: r["id"]) == sorted(model.values(), key=lambda r: r["id"])
    if evolve is evolve_promote:
        assert table.scan().schema.field("n").type == pa.int64()
    # Quality checks name the current columns and see their values (the model's nulls too).
    columns = list(next(iter(model.values())))
    filled = [c for c in columns if all(r[c] is not None for r in model.values())]
    empty = [c for c in columns if c not in filled]
    checks = [NullCheck(columns=filled), UniqueCheck(columns=["id"])]
    for result in phlo_quality(table="raw.t", checks=checks)(lambda: None).run(lakehouse=lh):
        assert (result.passed, result.failed_count, result.total_count) == (True, 0, 6), result
    if empty:
        (nulls,) = phlo_quality(table="raw.t", checks=[NullCheck(columns=empty)])(lambda: None).run(
            lakehouse=lh
        )
        assert (nulls.passed, nulls.failed_count) == (False, 6)

    # Compaction writes the rows in the current schema, values under the right columns.
    assert table.compact().files_rewritten == 2
    assert_every_read(lh, "raw.t", model)

    # A merge reads the rows it keeps by field id too; the row diff sees only its change.
    lh.create_tag("evolved")
    changed = {c: (f"new-{c}" if c in ("a", "b", "renamed", "note") else None) for c in columns}
    batch = [{**changed, "id": 1, **({"n": 11} if "n" in columns else {})}]
    result = table.merge(pa.Table.from_pylist(batch), "id")
    assert (result.rows_updated, result.rows_inserted) == (1, 0)
    model = upsert(model, batch)
    assert_every_read(lh, "raw.t", model)
    diff = lh.diff_rows("raw.t", "evolved", "main", key="id")
    assert (diff.added, diff.removed, diff.changed) == (0, 0, 1)
    assert diff.changed_sample.to_pylist() == [model[(1,)]]


def test_files_whose_columns_are_in_another_order_read_by_field_id(lh):
    """After a reorder, phlo's older files hold `a` before `b` and PyIceberg's newer ones `b`
    before `a`: both read right, through a merge that rewrites only one of them."""
    table = create(lh, ABN, abn(range(0, 3)))
    pyi = pyiceberg_catalog(lh).load_table("raw.t")
    to_current = evolve_reorder(pyi)
    pyi = pyiceberg_catalog(lh).load_table("raw.t")
    later = [to_current(r) for r in abn(range(3, 6))]
    pyi.append(pa.Table.from_pylist(later, schema=pyi.schema().as_arrow()))
    model = keyed([to_current(r) for r in abn(range(0, 3))] + later, ("id",))
    assert_every_read(lh, "raw.t", model)

    batch = [{"id": 4, "b": "B4", "a": "A4", "n": 44}]
    table.merge(pa.Table.from_pylist(batch), "id")
    model = upsert(model, batch)
    assert_every_read(lh, "raw.t", model)
    table.compact()
    assert_every_read(lh, "raw.t", model)


def test_scans_prune_and_filter_files_of_every_partition_spec(lh):
    """PyIceberg adds a partition field, appends, removes it and appends again: files of three
    specs, each pruned by its own spec's partition values and filtered exactly."""
    table = create(lh, {"id": pa.int64(), "region": pa.string(), "v": pa.string()}, REGIONS)
    pyi = pyiceberg_catalog(lh).load_table("raw.t")
    pyi.update_spec().add_identity("region").commit()
    second = [{"id": i, "region": ("eu", "us")[i % 2], "v": f"r{i}"} for i in range(6, 10)]
    pyi.append(pa.Table.from_pylist(second, schema=pyi.schema().as_arrow()))
    pyi.update_spec().remove_field("region").commit()
    third = [{"id": i, "region": ("eu", "us")[i % 2], "v": f"r{i}"} for i in range(10, 14)]
    pyi.append(pa.Table.from_pylist(third, schema=pyi.schema().as_arrow()))
    rows = REGIONS + second + third
    model = keyed(rows, ("id",))
    assert_every_read(lh, "raw.t", model)

    scan = table.scan(filter=("region", "==", "eu"))
    assert sorted(scan.to_arrow().to_pylist(), key=lambda r: r["id"]) == [
        r for r in rows if r["region"] == "eu"
    ]
    # The "us" file of the partitioned spec is pruned by its partition value alone.
    assert scan.files_scanned == scan.files_total - 1
    selected = table.scan(columns=["v"], filter=[("region", "==", "us"), ("id", ">=", 7)])
    assert sorted(selected.to_arrow().column("v").to_pylist()) == sorted(
        r["v"] for r in rows if r["region"] == "us" and r["id"] >= 7
    )

    batch = [{"id": 1, "region": "us", "v": "one"}, {"id": 8, "region": "eu", "v": "eight"}]
    assert table.merge(pa.Table.from_pylist(batch), "id").rows_updated == 2
    model = upsert(model, batch)
    assert_every_read(lh, "raw.t", model)
    table.compact()
    assert_every_read(lh, "raw.t", model)
    assert table.delete(("region", "==", "us")).rows_deleted == 7
    assert_every_read(lh, "raw.t", {k: r for k, r in model.items() if r["region"] == "eu"})
