"""PyIceberg evolving a table between a phlo write's plan and its commit. The phlo write runs in
another process, held after it wrote its data files and manifests (`commit.after-manifests`);
meanwhile PyIceberg (its SqlCatalog on the same database, or its RestCatalog through
`phlo catalog serve`) adds, renames or drops a column, gives the table a new partition spec or
sort order, changes `write.merge.mode`, tags a snapshot or rolls main back; then the write
resumes. Whether it lands or fails (only with `CommitConflictError`), the table keeps every
change PyIceberg made — schemas, specs, sort orders, properties, refs, snapshot and metadata
log — and phlo and PyIceberg read exactly the rows a plain-Python model says."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.transforms import BucketTransform, IdentityTransform
from pyiceberg.types import StringType
from tests import outside_support
from tests.outside_support import BEFORE, UPSERT, Model, held, seeded, sql_catalog

import phlo
from phlo import errors
from phlo.catalog_server import CatalogServer

Rows = dict[int, dict[str, Any]]

# The held writes: (code run in the child, what it does to the id → v model); the compaction
# race tests' and two more.
HELD: dict[str, tuple[str, Callable[[Model], Model]]] = {
    **outside_support.HELD,
    "append": ("lh.table('raw.t').append(batch({77: 'old'}))", lambda m: {**m, 77: "old"}),
    # Written on its own branch, then merged into main (rebased: main moved).
    "transaction merge": (
        f"with lh.transaction() as tx:\n    tx.table('raw.t').merge(batch({UPSERT}), 'id')",
        lambda m: {**m, **UPSERT},
    ),
}


MERGES = ["merge-on-read merge", "copy-on-write merge"]


@dataclass
class Evolution:
    """What PyIceberg does, and how the id → v model reads after it."""

    change: Callable[[Table], None]
    rows: Callable[[Model], Rows]
    # Rows PyIceberg itself wrote after the change.
    extra: Rows


def plain(model: Model) -> Rows:
    return {k: {"id": k, "v": v} for k, v in model.items()}


def add_column(table: Table) -> None:
    with table.update_schema() as update:
        update.add_column("w", StringType())
    table.append(pa.table({"id": pa.array([300], pa.int64()), "v": ["p"], "w": ["w"]}))


def rename(table: Table) -> None:
    with table.update_schema() as update:
        update.rename_column("v", "label")


def drop(table: Table) -> None:
    with table.update_schema() as update:
        update.delete_column("v")


def new_spec(table: Table) -> None:
    with table.update_spec() as update:
        update.add_field("id", BucketTransform(4), "id_bucket")


def sort_order(table: Table) -> None:
    with table.update_sort_order() as update:
        update.asc("id", IdentityTransform())


def merge_mode(table: Table) -> None:
    with table.transaction() as tx:
        tx.set_properties({"write.merge.mode": "copy-on-write", "other.engine": "yes"})


def tag(table: Table) -> None:
    snapshot = table.current_snapshot()
    assert snapshot is not None
    table.manage_snapshots().create_tag(snapshot.snapshot_id, "audit").commit()


def rollback(table: Table) -> None:
    """Main back to its first snapshot: keys 0..9."""
    first = table.history()[0].snapshot_id
    table.manage_snapshots().rollback_to_snapshot(first).commit()


EVOLUTIONS: dict[str, Evolution] = {
    "add column and append": Evolution(
        add_column,
        lambda m: {k: {"id": k, "v": v, "w": None} for k, v in m.items()},
        {300: {"id": 300, "v": "p", "w": "w"}},
    ),
    "rename column": Evolution(
        rename, lambda m: {k: {"id": k, "label": v} for k, v in m.items()}, {}
    ),
    "drop column": Evolution(drop, lambda m: {k: {"id": k} for k in m}, {}),
    "new partition spec": Evolution(new_spec, plain, {}),
    "sort order": Evolution(sort_order, plain, {}),
    "write.merge.mode": Evolution(merge_mode, plain, {}),
    "tag": Evolution(tag, plain, {}),
}


def uri_of(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> str:
    if kind == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'catalog.db'}"


def kept(before: TableMetadata, after: TableMetadata) -> None:
    """Everything `before` (the table right after PyIceberg's change) holds is in `after`."""
    assert {s.schema_id for s in before.schemas} <= {s.schema_id for s in after.schemas}
    assert after.current_schema_id == before.current_schema_id
    assert after.schema() == before.schema()
    assert {s.spec_id for s in before.partition_specs} <= {s.spec_id for s in after.partition_specs}
    assert after.default_spec_id == before.default_spec_id
    assert after.spec() == before.spec()
    assert after.default_sort_order_id == before.default_sort_order_id
    assert {o.order_id: o for o in after.sort_orders} == {o.order_id: o for o in before.sort_orders}
    assert before.properties.items() <= after.properties.items()
    assert {k: r for k, r in before.refs.items() if k != "main"} == {
        k: r for k, r in after.refs.items() if k != "main"
    }
    snapshots = {s.snapshot_id for s in after.snapshots}
    assert {s.snapshot_id for s in before.snapshots} <= snapshots
    log = [entry.snapshot_id for entry in after.snapshot_log]
    assert [e.snapshot_id for e in before.snapshot_log] == log[: len(before.snapshot_log)]
    files = [entry.metadata_file for entry in after.metadata_log]
    assert [entry.metadata_file for entry in before.metadata_log] == files[
        : len(before.metadata_log)
    ]


def assert_rows(lh: phlo.Lakehouse, other: Catalog, rows: Rows, when: str) -> None:
    """phlo and the other engine read exactly `rows` from raw.t."""
    expected = sorted(rows.values(), key=lambda r: r["id"])
    for reader, table in [
        ("phlo", lh.table("raw.t").scan().to_arrow()),
        ("pyiceberg", other.load_table("raw.t").scan().to_arrow()),
    ]:
        assert sorted(table.to_pylist(), key=lambda r: r["id"]) == expected, (when, reader)


def added_under(table: Table, label: str) -> None:
    """The manifests the current snapshot added are of the table's default spec and name its
    current schema: a write lands only under what the table has now."""
    snapshot = table.current_snapshot()
    assert snapshot is not None
    assert snapshot.schema_id == table.metadata.current_schema_id, label
    added = [m for m in snapshot.manifests(table.io) if m.added_snapshot_id == snapshot.snapshot_id]
    assert {m.partition_spec_id for m in added} <= {table.metadata.default_spec_id}, label


def race(
    lh: phlo.Lakehouse, uri: str, other: Catalog, write: str, evolution: str, folder: Path
) -> None:
    code, held_change = HELD[write]
    evolve = EVOLUTIONS[evolution]
    with held(lh, uri, code, "commit.after-manifests", folder) as writer:
        evolve.change(other.load_table("raw.t"))
        before = other.load_table("raw.t").metadata
        kind, message = writer.finish()
    label = f"{write} after {evolution}: {kind} {message}"
    if evolution == "new partition spec" and write in MERGES:
        # Its files were written under the old spec: every catalog refuses the commit (a REST
        # one because phlo asserts the default spec id), and the reload's check says conflict.
        assert kind == errors.CommitConflictError.__name__, label
    if kind == "ok":
        model = held_change(BEFORE)
    else:
        assert kind == errors.CommitConflictError.__name__, label
        assert "raw.t" in message, label
        model = BEFORE
    after = other.load_table("raw.t").metadata
    kept(before, after)
    if kind == "ok":
        assert after.current_snapshot_id != before.current_snapshot_id, label
        added_under(other.load_table("raw.t"), label)
    else:
        assert after.current_snapshot_id == before.current_snapshot_id, label
    assert_rows(lh, other, {**evolve.rows(model), **evolve.extra}, label)
    # The next phlo write goes under the evolved schema and spec.
    lh.table("raw.t").append(pa.table({"id": pa.array([500], pa.int64())}))
    assert 500 in lh.table("raw.t").scan().to_arrow().column("id").to_pylist()


def cases() -> list[tuple[str, str, str]]:
    """(catalog, held write, evolution): both merges against every evolution, the other
    writes against a schema and a spec change; PostgreSQL (the same engine checks) a few."""
    merges = MERGES
    others = ["append", "merge-on-read delete", "compaction", "transaction merge"]
    return [
        *(("sqlite", w, e) for w in merges for e in EVOLUTIONS),
        *(
            ("sqlite", w, e)
            for w in others
            for e in ["add column and append", "new partition spec"]
        ),
        ("postgresql", "copy-on-write merge", "add column and append"),
        ("postgresql", "merge-on-read merge", "write.merge.mode"),
    ]


@pytest.mark.parametrize(("kind", "write", "evolution"), cases())
def test_an_evolution_between_plan_and_commit_is_kept_and_rows_follow_the_model(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str, write: str, evolution: str
) -> None:
    catalog = uri_of(request, kind, tmp_path)
    lh = seeded(catalog, tmp_path)
    other = sql_catalog(lh)
    try:
        race(lh, catalog, other, write, evolution, tmp_path / "fp")
    finally:
        other.engine.dispose()


@pytest.mark.parametrize("write", ["append", "copy-on-write merge"])
def test_a_rollback_between_plan_and_commit_is_kept(tmp_path: Path, write: str) -> None:
    """Main rolled back under a held write: the write fails (the branch was reset) or lands
    on the rolled-back main; never brings the rolled-back rows back."""
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    lh = seeded(catalog, tmp_path)
    other = sql_catalog(lh)
    code, held_change = HELD[write]
    first = {k: v for k, v in BEFORE.items() if k < 10}
    try:
        with held(lh, catalog, code, "commit.after-manifests", tmp_path / "fp") as writer:
            rollback(other.load_table("raw.t"))
            kind, message = writer.finish()
        assert kind in ("ok", errors.CommitConflictError.__name__), (kind, message)
        model = held_change(first) if kind == "ok" else first
        assert_rows(lh, other, plain(model), f"{write} after a rollback: {kind} {message}")
    finally:
        other.engine.dispose()


REST_EVOLUTIONS = ["add column and append", "rename column", "new partition spec"]


@pytest.mark.parametrize(
    ("write", "evolution"),
    [
        *((w, e) for w in MERGES for e in REST_EVOLUTIONS),
        # A transaction's commit asserts the schema its snapshot was planned under.
        *(("transaction merge", e) for e in REST_EVOLUTIONS),
    ],
)
def test_through_phlo_catalog_serve_an_evolution_between_plan_and_commit_is_kept(
    tmp_path: Path, write: str, evolution: str
) -> None:
    """The same race with phlo and PyIceberg's RestCatalog both clients of one server."""
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    with CatalogServer(lh, port=0) as server:
        client = phlo.Lakehouse.connect(catalog=server.uri, warehouse=lh.warehouse)
        other = RestCatalog("rest", uri=server.uri)
        race(client, server.uri, other, write, evolution, tmp_path / "fp")
