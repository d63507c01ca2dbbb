"""A table dropped and created again under its name by another engine (PyIceberg's SqlCatalog on
the same database: a new table-uuid) while a phlo write to the old table is held in another
process between writing its files and committing (`commit.after-manifests:pause`), or while a
branch forked from the old table is open. The write must fail with `CommitConflictError`
naming the table and saying it was created again, and leave the new table exactly as PyIceberg
made it (read by phlo and by PyIceberg): never land the old table's rows on the new one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from tests.outside_support import (
    UPSERT,
    Model,
    assert_reads,
    batch,
    held,
    next_write_succeeds,
    seeded,
    sql_catalog,
)

import phlo
from phlo import errors
from phlo.catalog_server import CatalogServer

# The held writes (code run in the child process). Each one changes rows, so that landing on
# the new table would show.
WRITES: dict[str, str] = {
    "append": "lh.table('raw.t').append(batch({77: 'old'}))",
    "merge-on-read merge": (
        f"lh.table('raw.t').merge(batch({UPSERT}), 'id', write_mode='merge-on-read')"
    ),
    "copy-on-write merge": (
        f"lh.table('raw.t').merge(batch({UPSERT}), 'id', write_mode='copy-on-write')"
    ),
    "merge-on-read delete": "lh.table('raw.t').delete(('id', '<', 3), write_mode='merge-on-read')",
    "compaction": "lh.table('raw.t').compact()",
    "transaction append": (
        "with lh.transaction() as tx:\n    tx.table('raw.t').append(batch({77: 'old'}))"
    ),
    "transaction merge": (
        f"with lh.transaction() as tx:\n    tx.table('raw.t').merge(batch({UPSERT}), 'id')"
    ),
}
# On a table with no snapshot yet (nothing to compact or delete).
EMPTY_WRITES = ["append", "merge-on-read merge", "transaction append"]
# What PyIceberg writes into the new table.
NEW: Model = {7: "new"}


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return uri_of(request, request.param, tmp_path)


def uri_of(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> str:
    if kind == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'catalog.db'}"


def empty(catalog: str, tmp_path: Path) -> phlo.Lakehouse:
    """A lakehouse whose raw.t has no snapshot yet."""
    warehouse = f"file://{(tmp_path / 'warehouse').resolve()}"
    lh = phlo.Lakehouse.connect(catalog=catalog, warehouse=warehouse)
    lh.create_namespace("raw")
    lh.create_table("raw.t", {"id": pa.int64(), "v": pa.string()})
    return lh


def recreate(lh: phlo.Lakehouse, rows: Model) -> None:
    """PyIceberg drops raw.t and creates it again with the same schema, holding `rows`."""
    catalog = sql_catalog(lh)
    try:
        schema = catalog.load_table("raw.t").schema()
        old_uuid = catalog.load_table("raw.t").metadata.table_uuid
        catalog.drop_table("raw.t")
        table = catalog.create_table("raw.t", schema=schema)
        assert table.metadata.table_uuid != old_uuid
        if rows:
            table.append(batch(rows))
    finally:
        catalog.engine.dispose()


def assert_refused(outcome: tuple[str, str]) -> None:
    kind, message = outcome
    assert kind == errors.CommitConflictError.__name__, outcome
    assert "raw.t" in message and "created again" in message, outcome


def cases() -> Iterator[tuple[str, str, bool, bool]]:
    """(catalog, write, on a seeded table, PyIceberg writes rows into the new table). The check
    is the engine's, whatever the catalog: PostgreSQL gets the cases that used to land."""
    for write in WRITES:
        yield "sqlite", write, True, True
    for write in EMPTY_WRITES:
        for new_rows in (True, False):
            yield "sqlite", write, False, new_rows
        yield "postgresql", write, False, False
    yield "postgresql", "transaction append", True, True


@pytest.mark.parametrize(("kind", "write", "seeded_first", "new_rows"), list(cases()))
def test_a_write_held_while_the_table_is_created_again_never_lands_on_the_new_table(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    kind: str,
    write: str,
    seeded_first: bool,
    new_rows: bool,
) -> None:
    catalog = uri_of(request, kind, tmp_path)
    lh = seeded(catalog, tmp_path) if seeded_first else empty(catalog, tmp_path)
    model = NEW if new_rows else {}
    with held(lh, catalog, WRITES[write], "commit.after-manifests", tmp_path / "fp") as writer:
        recreate(lh, model)
        outcome = writer.finish()
    assert_refused(outcome)
    assert_reads(lh, model, f"{write}: {outcome}")
    next_write_succeeds(lh, model)


@pytest.mark.parametrize(
    ("write", "seeded_first"),
    [
        ("append", False),
        ("append", True),
        ("transaction append", False),
        ("merge-on-read merge", True),
    ],
)
def test_through_phlo_catalog_serve_a_held_write_never_lands_on_the_new_table(
    tmp_path: Path, write: str, seeded_first: bool
) -> None:
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    lh = seeded(catalog, tmp_path) if seeded_first else empty(catalog, tmp_path)
    with CatalogServer(lh, port=0) as server:
        client = phlo.Lakehouse.connect(catalog=server.uri, warehouse=lh.warehouse)
        with held(
            client, server.uri, WRITES[write], "commit.after-manifests", tmp_path / "fp"
        ) as w:
            recreate(lh, NEW)
            outcome = w.finish()
    assert_refused(outcome)
    assert_reads(lh, NEW, f"{write} through REST: {outcome}")
    next_write_succeeds(lh, NEW)


@pytest.mark.parametrize("on_branch", ["append", "merge"])
def test_a_branch_forked_from_the_old_table_does_not_merge_into_the_new_one(
    catalog: str, tmp_path: Path, on_branch: str
) -> None:
    lh = seeded(catalog, tmp_path)
    lh.create_branch("dev")
    dev = lh.table("raw.t", ref="dev")
    if on_branch == "append":
        dev.append(batch({77: "dev"}))
    else:
        dev.merge(batch(UPSERT), "id")
    recreate(lh, NEW)
    with pytest.raises(errors.CommitConflictError, match=r"raw\.t.*created again"):
        lh.merge("dev", "main")
    assert_reads(lh, NEW, "after the refused branch merge")
    next_write_succeeds(lh, NEW)


def drop(lh: phlo.Lakehouse) -> None:
    catalog = sql_catalog(lh)
    try:
        catalog.drop_table("raw.t")
    finally:
        catalog.engine.dispose()


@pytest.mark.parametrize("write", ["append", "transaction append", "transaction merge"])
def test_a_write_held_while_the_table_is_dropped_never_brings_it_back(
    tmp_path: Path, write: str
) -> None:
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    lh = seeded(catalog, tmp_path)
    with held(lh, catalog, WRITES[write], "commit.after-manifests", tmp_path / "fp") as writer:
        drop(lh)
        kind, message = writer.finish()
    refusals = {errors.CommitConflictError.__name__, errors.NoSuchTableError.__name__}
    assert kind in refusals and "raw.t" in message, (kind, message)
    with pytest.raises(errors.NoSuchTableError):
        lh.table("raw.t")


def test_a_branch_that_changed_a_table_dropped_on_main_does_not_bring_it_back(
    tmp_path: Path,
) -> None:
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    lh.create_branch("dev")
    lh.table("raw.t", ref="dev").append(batch({77: "dev"}))
    drop(lh)
    with pytest.raises(errors.CommitConflictError, match=r"raw\.t: dropped on main"):
        lh.merge("dev", "main")
    with pytest.raises(errors.NoSuchTableError):
        lh.table("raw.t")
