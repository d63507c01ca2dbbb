"""A phlo branch merge held between its plan and its apply (`merge.before-apply:pause`, in
another process) while PyIceberg (its SqlCatalog on the same database) writes or evolves `main`.
The merge must see PyIceberg's commit: plan again and land on top of it (keeping PyIceberg's
rows and metadata changes), or fail with `CommitConflictError` and change nothing; never
overwrite main's pointer with a plan made before PyIceberg's commit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pyiceberg.expressions import EqualTo
from pyiceberg.table import Table
from pyiceberg.types import StringType
from tests.outside_support import (
    BEFORE,
    BRANCH_MERGE,
    Model,
    assert_reads,
    batch,
    held,
    next_write_succeeds,
    pyiceberg,
    pyiceberg_table,
    seeded,
)

from phlo import errors


def add_column(table: Table) -> None:
    with table.update_schema() as update:
        update.add_column("w", StringType())


def set_property(table: Table) -> None:
    with table.transaction() as tx:
        tx.set_properties({"other.engine": "yes"})


# PyIceberg's write to main: (the write, what it does to main's model, whether the merge may
# still land on top of it).
RACERS: dict[str, tuple[Callable[[Table], None], Callable[[Model], Model], bool]] = {
    "append": (lambda t: t.append(batch({400: "py"})), lambda m: {**m, 400: "py"}, True),
    "delete of a key dev upserted": (
        lambda t: t.delete(EqualTo("id", 5)),
        lambda m: {k: v for k, v in m.items() if k != 5},
        False,
    ),
    "upsert of a key dev inserted": (
        lambda t: t.upsert(batch({99: "py"}), ["id"]),
        lambda m: {**m, 99: "py"},
        False,
    ),
    "add column": (add_column, lambda m: m, True),
    "set property": (set_property, lambda m: m, True),
}


@pytest.mark.parametrize("diverged", [True, False], ids=["rebase", "fast-forward"])
@pytest.mark.parametrize("racer", list(RACERS))
def test_a_held_branch_merge_keeps_what_pyiceberg_committed_to_main_meanwhile(
    tmp_path: Path, racer: str, diverged: bool
) -> None:
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    lh = seeded(catalog, tmp_path)
    lh.create_branch("dev")
    lh.table("raw.t", ref="dev").merge(batch({5: "dev", 99: "dev"}), "id")
    main: Model = dict(BEFORE)
    if diverged:
        lh.table("raw.t").append(batch({300: "main"}))
        main[300] = "main"
    write, change, may_land = RACERS[racer]
    with held(lh, catalog, BRANCH_MERGE, "merge.before-apply", tmp_path / "fp") as writer:
        pyiceberg(lh, write)
        theirs = change(main)
        with pyiceberg_table(lh) as pyi:
            before = pyi.metadata
        kind, message = writer.finish()
    label = f"{racer}: {kind} {message}"
    if kind == "ok":
        assert may_land, label
        model = {**theirs, 5: "dev", 99: "dev"}
    else:
        assert kind == errors.CommitConflictError.__name__ and "raw.t" in message, label
        model = theirs
    with pyiceberg_table(lh) as pyi:
        after = pyi.metadata
    assert after.current_schema_id == before.current_schema_id, label
    assert before.properties.items() <= after.properties.items(), label
    assert {s.snapshot_id for s in before.snapshots} <= {s.snapshot_id for s in after.snapshots}
    if racer == "add column":
        rows = lh.table("raw.t").scan().to_arrow()
        assert rows.column_names == ["id", "v", "w"], label
        rows = rows.drop_columns(["w"])
        got = {r["id"]: r["v"] for r in rows.to_pylist()}
        assert got == model and rows.num_rows == len(model), label
    else:
        assert_reads(lh, model, label)
        next_write_succeeds(lh, model)


def test_a_phlo_branch_merge_racing_a_process_writing_main_loses_nothing(tmp_path: Path) -> None:
    """The same with another phlo process appending to main (held after its manifests) while
    the merge applies: both land."""
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    lh = seeded(catalog, tmp_path)
    lh.create_branch("dev")
    lh.table("raw.t", ref="dev").merge(batch({5: "dev", 99: "dev"}), "id")
    code = "lh.table('raw.t').append(batch({400: 'main'}))"
    with held(lh, catalog, code, "commit.after-manifests", tmp_path / "fp") as writer:
        lh.merge("dev", "main")
        assert writer.finish() == ("ok", "")
    model = {**BEFORE, 5: "dev", 99: "dev", 400: "main"}
    assert_reads(lh, model, "a branch merge and an append racing")
    next_write_succeeds(lh, model)
