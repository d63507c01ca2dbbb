"""Table settings changed on a phlo branch — properties (phlo's `set_properties`), a sort order
and a format-version upgrade (PyIceberg through `phlo catalog serve` on the branch), tags and
branches in the table's own metadata — and merged into a main that moved since the fork, so
the merge rebases. A rebase writes main's next metadata itself: it must carry the branch's
settings as a fast-forward does, or refuse with `CommitConflictError` and change nothing;
never drop them silently."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import LongType, StringType
from tests.outside_support import (
    BEFORE,
    Model,
    assert_reads,
    batch,
    optional,
    pyiceberg,
    pyiceberg_table,
    seeded,
    sql_catalog,
)

import phlo
from phlo.catalog_server import CatalogServer
from phlo.errors import CommitConflictError


@contextmanager
def on_dev(lh: phlo.Lakehouse) -> Iterator[Table]:
    """raw.t on phlo's branch dev, loaded by PyIceberg through `phlo catalog serve`."""
    with CatalogServer(lh, port=0) as server:
        yield RestCatalog("dev", uri=f"{server.uri}/iceberg/dev").load_table("raw.t")


def properties(lh: phlo.Lakehouse, ref: str = "main") -> dict[str, str]:
    props = lh.table("raw.t", ref=ref).properties
    return {k: v for k, v in props.items() if k in {"owner", "write.merge.mode", "gone"}}


def sort_fields(lh: phlo.Lakehouse, ref: str = "main") -> list[str]:
    with pyiceberg_table(lh) if ref == "main" else on_dev(lh) as t:
        return [str(f) for f in t.sort_order().fields]


def set_properties(lh: phlo.Lakehouse) -> None:
    lh.table("raw.t", ref="dev").set_properties(
        {"owner": "dev", "write.merge.mode": "merge-on-read", "gone": None}
    )


def sort_by_id(lh: phlo.Lakehouse) -> None:
    with on_dev(lh) as t, t.update_sort_order() as update:
        update.asc("id", IdentityTransform())


# A setting changed on dev (after its rows): how main reads once merged.
CARRIED: dict[str, tuple[Callable[[phlo.Lakehouse], None], Callable[..., object]]] = {
    "properties": (set_properties, properties),
    "sort order": (sort_by_id, sort_fields),
}


@pytest.mark.parametrize("setting", list(CARRIED))
@pytest.mark.parametrize("main_moves", [False, True], ids=["fast-forward", "rebase"])
def test_a_merge_carries_the_settings_the_branch_changed(
    tmp_path: Path, setting: str, main_moves: bool
) -> None:
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    lh.table("raw.t").set_properties({"gone": "soon"})
    lh.create_branch("dev")
    lh.table("raw.t", ref="dev").append(batch({99: "dev"}))
    change, read = CARRIED[setting]
    change(lh)
    on_branch = read(lh, "dev")
    assert on_branch != read(lh)
    model: Model = {**BEFORE, 99: "dev"}
    if main_moves:
        pyiceberg(lh, lambda t: t.append(batch({300: "main"})))
        model[300] = "main"
    lh.merge("dev", "main")
    assert read(lh) == on_branch
    assert_reads(lh, model, f"{setting} merged")


def tag(t: Table) -> None:
    t.manage_snapshots().create_tag(t.current_snapshot().snapshot_id, "audited").commit()


def branch(t: Table) -> None:
    t.manage_snapshots().create_branch(t.current_snapshot().snapshot_id, "feat").commit()


@pytest.mark.parametrize("make", [tag, branch], ids=["tag", "table-level branch"])
def test_a_rebase_refuses_to_drop_refs_the_branch_made_in_the_table_metadata(
    tmp_path: Path, make: Callable[[Table], None]
) -> None:
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    lh.create_branch("dev")
    lh.table("raw.t", ref="dev").append(batch({99: "dev"}))
    with on_dev(lh) as t:
        make(t)
    lh.table("raw.t").append(batch({300: "main"}))
    with pytest.raises(CommitConflictError, match=r"table-level refs (audited|feat)"):
        lh.merge("dev", "main")
    assert_reads(lh, {**BEFORE, 300: "main"}, "after the refused merge")
    with pyiceberg_table(lh) as t:
        assert set(t.metadata.refs) == {"main"}
    # Undone on the branch, the merge lands; the ref is made on main afterwards.
    with on_dev(lh) as t:
        undo = t.manage_snapshots()
        (undo.remove_tag("audited") if make is tag else undo.remove_branch("feat")).commit()
    lh.merge("dev", "main")
    assert_reads(lh, {**BEFORE, 99: "dev", 300: "main"}, "after the merge")


def test_a_property_both_sides_changed_differently_is_a_conflict(tmp_path: Path) -> None:
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    lh.create_branch("dev")
    lh.table("raw.t", ref="dev").set_properties({"owner": "dev"})
    lh.table("raw.t").set_properties({"owner": "main"})
    lh.table("raw.t").append(batch({300: "main"}))
    with pytest.raises(CommitConflictError, match="table property owner"):
        lh.merge("dev", "main")
    assert properties(lh) == {"owner": "main"}
    # The same value on both sides is no conflict.
    lh.table("raw.t").set_properties({"owner": "dev"})
    lh.merge("dev", "main")
    assert properties(lh) == {"owner": "dev"}


def test_a_format_upgrade_on_the_branch_rebases_onto_a_v1_main(tmp_path: Path) -> None:
    lh = phlo.Lakehouse.connect(
        catalog=f"sqlite:///{tmp_path / 'catalog.db'}",
        warehouse=f"file://{(tmp_path / 'warehouse').resolve()}",
    )
    lh.create_namespace("raw")
    catalog = sql_catalog(lh)
    schema = Schema(optional(1, "id", LongType()), optional(2, "v", StringType()))
    v1 = catalog.create_table("raw.t", schema=schema, properties={"format-version": "1"})
    v1.append(batch(BEFORE))
    lh.create_branch("dev")
    dev = lh.table("raw.t", ref="dev")
    dev.set_properties({"format-version": "2"})
    dev.merge(batch({5: "dev", 99: "dev"}), "id", write_mode="merge-on-read")
    catalog.load_table("raw.t").append(pa.table({"id": [300], "v": ["main"]}))
    catalog.engine.dispose()
    lh.merge("dev", "main")
    assert lh.table("raw.t").history()[-1].summary.get("phlo.rebased-from") == "dev"
    with pyiceberg_table(lh) as t:
        assert t.format_version == 2
    assert_reads(lh, {**BEFORE, 5: "dev", 99: "dev", 300: "main"}, "after the rebase")
