"""Other engines' writes on either side of a phlo branch merge. PyIceberg writes on phlo's
branch dev through `phlo catalog serve` (its upserts, copy-on-write deletes and overwrites
record no unique key) while main moves; PyIceberg rolls main back behind the fork. The merge
must land exactly both sides' changes or refuse with `CommitConflictError` and change nothing —
never bring back a row main deleted, drop one dev wrote, or write a key twice."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table
from tests.outside_support import (
    BEFORE,
    Model,
    assert_reads,
    batch,
    pyiceberg,
    pyiceberg_table,
    seeded,
)

import phlo
from phlo.catalog_server import CatalogServer
from phlo.errors import CommitConflictError


def without(model: Model, *keys: int) -> Model:
    return {k: v for k, v in model.items() if k not in keys}


# PyIceberg's write on dev: (the write, what it does to the rows, whether it rewrote rows).
ON_DEV: dict[str, tuple[Callable[[Table], None], Callable[[Model], Model], bool]] = {
    "upsert": (
        lambda t: t.upsert(batch({5: "dev", 99: "dev"}), ["id"]),
        lambda m: {**m, 5: "dev", 99: "dev"},
        True,
    ),
    "delete": (lambda t: t.delete(EqualTo("id", 5)), lambda m: without(m, 5), True),
    "overwrite": (
        lambda t: t.overwrite(batch({5: "ow"}), overwrite_filter=EqualTo("id", 5)),
        lambda m: {**m, 5: "ow"},
        True,
    ),
    "append": (lambda t: t.append(batch({99: "dev"})), lambda m: {**m, 99: "dev"}, False),
}
# phlo's write on main after the fork, and what it does to the rows.
ON_MAIN: dict[str, tuple[Callable[[phlo.Lakehouse], object], Callable[[Model], Model]]] = {
    "append of another key": (
        lambda lh: lh.table("raw.t").append(batch({300: "main"})),
        lambda m: {**m, 300: "main"},
    ),
    "merge-on-read delete in dev's file": (
        lambda lh: lh.table("raw.t").delete(("id", "=", 6), write_mode="merge-on-read"),
        lambda m: without(m, 6),
    ),
}


@pytest.mark.parametrize("main", list(ON_MAIN))
@pytest.mark.parametrize("dev", list(ON_DEV))
def test_pyiceberg_writes_on_a_phlo_branch_merge_whole_or_not_at_all(
    tmp_path: Path, dev: str, main: str
) -> None:
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    lh.create_branch("dev")
    write, dev_change, rewrote = ON_DEV[dev]
    with CatalogServer(lh, port=0) as server:
        write(RestCatalog("dev", uri=f"{server.uri}/iceberg/dev").load_table("raw.t"))
    main_write, main_change = ON_MAIN[main]
    main_write(lh)
    theirs = main_change(dict(BEFORE))
    if rewrote:  # no recorded key: nothing tells its rows apart from main's new ones
        with pytest.raises(CommitConflictError):
            lh.merge("dev", "main")
        assert_reads(lh, theirs, "after the refused merge")
    else:
        lh.merge("dev", "main")
        assert_reads(lh, dev_change(theirs), "after the merge")
    assert {
        r["id"]: r["v"] for r in lh.table("raw.t", ref="dev").scan().to_arrow().to_pylist()
    } == (dev_change(dict(BEFORE)))


@pytest.mark.parametrize("mode", [None, "copy-on-write", "merge-on-read"])
def test_a_branch_merge_after_pyiceberg_rolled_main_back_behind_the_fork(
    tmp_path: Path, mode: str | None
) -> None:
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    lh.create_branch("dev")
    dev = lh.table("raw.t", ref="dev")
    if mode is None:
        dev.append(batch({99: "dev"}))
    else:
        dev.merge(batch({25: "dev", 99: "dev"}), "id", write_mode=mode)
    with pyiceberg_table(lh) as t:
        t.manage_snapshots().rollback_to_snapshot(t.history()[0].snapshot_id).commit()
    pyiceberg(lh, lambda t: t.append(batch({400: "py"})))
    main: Model = {**{k: "a" for k in range(10)}, 400: "py"}
    if mode is None:  # appends commute: dev's rows land on main as it is now
        lh.merge("dev", "main")
        assert_reads(lh, {**main, 99: "dev"}, "after the merge")
    else:  # dev rewrote a file main no longer has: its copy would bring back rows 20..29
        with pytest.raises(CommitConflictError, match="no longer leads back") as refused:
            lh.merge("dev", "main")
        assert "rolled main back past it" in str(refused.value)
        assert_reads(lh, main, "after the refused merge")
