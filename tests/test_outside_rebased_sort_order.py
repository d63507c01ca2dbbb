"""A sort order on a column added on a phlo branch, merged into a main to which another engine
(PyIceberg) added columns meanwhile, so the merge rebases. The branch's column and its sort order
join main when the field ids fit (the column added on both sides alike, or under an id main never
handed out), with the sort order naming the same column; when main gave that id to another
column, the merge is a `CommitConflictError` naming both, and nothing merges. Never a broken
metadata file or a sort order on the wrong column."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.table import Table
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import LongType, StringType
from tests.outside_support import BEFORE, assert_reads, pyiceberg, pyiceberg_table, seeded

import phlo
from phlo.catalog_server import CatalogServer
from phlo.errors import CommitConflictError


@contextmanager
def on_dev(lh: phlo.Lakehouse) -> Iterator[Table]:
    """raw.t on phlo's branch dev, loaded by PyIceberg through `phlo catalog serve`."""
    with CatalogServer(lh, port=0) as server:
        yield RestCatalog("dev", uri=f"{server.uri}/iceberg/dev").load_table("raw.t")


def dev_adds_and_sorts(lh: phlo.Lakehouse, columns: dict[str, pa.DataType], by: str) -> None:
    """dev appends a row with new `columns` (phlo's schema evolution), then sorts by `by`."""
    row = {"id": [99], "v": ["dev"], **{name: pa.array([7], t) for name, t in columns.items()}}
    lh.table("raw.t", ref="dev").append(pa.table(row), schema_evolution="evolve")
    with on_dev(lh) as t, t.update_sort_order() as update:
        update.asc(by, IdentityTransform())


def main_adds(lh: phlo.Lakehouse, columns: dict[str, type]) -> None:
    """PyIceberg adds `columns` to main, then appends a row."""

    def add(t: Table) -> None:
        with t.update_schema() as update:
            for name, kind in columns.items():
                update.add_column(name, kind())
        t.append(pa.table({"id": pa.array([300], pa.int64()), "v": ["main"]}))

    pyiceberg(lh, add)


def sort_columns(lh: phlo.Lakehouse) -> list[str]:
    """The columns main's sort order names, looked up by field id in main's schema."""
    with pyiceberg_table(lh) as t:
        return [t.schema().find_column_name(f.source_id) for f in t.sort_order().fields]


def field_ids(lh: phlo.Lakehouse) -> dict[str, int]:
    with pyiceberg_table(lh) as t:
        return {f.name: f.field_id for f in t.schema().fields}


@pytest.mark.parametrize(
    ("on_dev_added", "on_main_added", "by"),
    [
        # Both sides added c alike (id 3); main also d (id 4).
        ({"c": pa.int64()}, {"c": LongType, "d": StringType}, "c"),
        # dev added c and e (ids 3, 4), main c alike: e's id 4 is new to main.
        ({"c": pa.int64(), "e": pa.int64()}, {"c": LongType}, "e"),
    ],
    ids=["same column", "id main never handed out"],
)
def test_a_sort_order_on_a_branch_column_is_carried_when_its_id_fits(
    tmp_path: Path, on_dev_added, on_main_added, by
) -> None:
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    lh.create_branch("dev")
    dev_adds_and_sorts(lh, on_dev_added, by)
    with on_dev(lh) as t:
        dev_id = t.schema().find_field(by).field_id
    main_adds(lh, on_main_added)
    lh.merge("dev", "main")
    assert lh.table("raw.t").history()[-1].summary.get("phlo.rebased-from") == "dev"
    assert field_ids(lh)[by] == dev_id
    assert sort_columns(lh) == [by]
    assert_reads(lh, {**BEFORE, 99: "dev", 300: "main"}, "after the rebase")
    got = lh.table("raw.t").scan(columns=["id", by]).to_arrow().to_pylist()
    assert {r["id"]: r[by] for r in got if r[by] is not None} == {99: 7}


@pytest.mark.parametrize(
    ("on_dev_added", "on_main_added", "by", "clash"),
    [
        ({"c": pa.int64()}, {"d": StringType}, "c", "c was added on the source with field id 3"),
        (
            {"c": pa.int64(), "e": pa.int64()},
            {"c": LongType, "d": StringType},
            "e",
            "e was added on the source with field id 4",
        ),
    ],
    ids=["other column", "second id taken"],
)
def test_a_sort_order_on_a_branch_column_whose_id_main_took_is_a_conflict(
    tmp_path: Path, on_dev_added, on_main_added, by, clash
) -> None:
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    lh.create_branch("dev")
    dev_adds_and_sorts(lh, on_dev_added, by)
    main_adds(lh, on_main_added)
    before = lh.table("raw.t").metadata_location
    with pytest.raises(CommitConflictError, match=clash):
        lh.merge("dev", "main")
    assert lh.table("raw.t").metadata_location == before
    assert sort_columns(lh) == []
    assert_reads(lh, {**BEFORE, 300: "main"}, "after the refused merge")


def test_a_carried_sort_order_takes_a_new_id_when_main_used_the_branchs(tmp_path: Path) -> None:
    """Main sorted by v and back to unsorted since the fork: its order id 1 is taken, so dev's
    order (also id 1 on dev) joins main under a new id, on the right column."""
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    lh.create_branch("dev")
    dev_adds_and_sorts(lh, {"c": pa.int64()}, "c")
    with on_dev(lh) as t:
        assert t.sort_order().order_id == 1
    with pyiceberg_table(lh) as t, t.update_sort_order() as update:
        update.asc("v", IdentityTransform())
    with pyiceberg_table(lh) as t, t.update_sort_order():
        pass  # no fields: unsorted again
    main_adds(lh, {"c": LongType})
    lh.merge("dev", "main")
    assert sort_columns(lh) == ["c"]
    with pyiceberg_table(lh) as t:
        orders = {o.order_id: [f.source_id for f in o.fields] for o in t.metadata.sort_orders}
        assert orders[1] == [t.schema().find_field("v").field_id]
        assert t.sort_order().order_id not in (0, 1)
