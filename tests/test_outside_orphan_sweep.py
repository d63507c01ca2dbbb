"""Another engine's orphan removal (Java's `deleteOrphanFiles`, Spark's `remove_orphan_files`)
knows only what `main`'s metadata reaches: it deletes the files of phlo's branches and tags that
main does not share, and the `.phlo-ref` copies. phlo cannot prevent that (docs/branches.md says
what to exclude); what it must do is fail reads and merges of such a ref with a typed error
naming the ref, the missing file and the way out — never a panic, never a partial result, never
a merge that lands on main without the branch's rows."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

import phlo
from phlo.errors import PhloError, StorageError


def batch(ids: range) -> pa.Table:
    return pa.table({"id": pa.array(list(ids), pa.int64())})


def reached_from_main(lh: phlo.Lakehouse) -> set[str]:
    """Every file main's metadata reaches, as an orphan sweep that knows only main sees it:
    its metadata file and log, each snapshot's manifest list, manifests and data files."""
    catalog = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
    try:
        table = catalog.load_table("raw.t")
        files = {table.metadata_location, *(m.metadata_file for m in table.metadata.metadata_log)}
        for snapshot in table.snapshots():
            files.add(snapshot.manifest_list)
            for manifest in snapshot.manifests(table.io):
                files.add(manifest.manifest_path)
                for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                    files.add(entry.data_file.file_path)
        return {f.removeprefix("file://") for f in files}
    finally:
        catalog.engine.dispose()


def sweep(lh: phlo.Lakehouse, keep: str | None = None) -> list[str]:
    """Deletes every file under raw.t's folder main does not reach (all but names ending in
    `keep`); returns their names."""
    reached = reached_from_main(lh)
    folder = Path(lh.warehouse.removeprefix("file://")) / "raw.db" / "t"
    swept = [
        p
        for p in folder.rglob("*")
        if p.is_file() and str(p) not in reached and not (keep and p.name.endswith(keep))
    ]
    for p in swept:
        p.unlink()
    return sorted(p.name for p in swept)


def ids(lh: phlo.Lakehouse, ref: str = "main") -> list[int]:
    fresh = phlo.Lakehouse.connect(catalog=lh.catalog_uri, warehouse=lh.warehouse)
    return sorted(fresh.table("raw.t", ref=ref).scan().to_arrow().column("id").to_pylist())


def assert_names_the_way_out(error: PhloError, ref: str) -> None:
    message = str(error)
    assert f"phlo ref {ref}" in message, message
    assert "orphan removal" in message and "delete_branch" in message, message


def branch_with_own_files(lh: phlo.Lakehouse) -> None:
    """raw.t on main, and on branch dev with rows (and files) of its own, also tagged."""
    table = lh.create_table("raw.t", {"id": pa.int64()})
    table.append(batch(range(0, 3)))
    lh.create_branch("dev")
    lh.table("raw.t", ref="dev").append(batch(range(100, 102)))
    lh.create_tag("dev-done", "dev")


@pytest.mark.parametrize("main_moves", [False, True], ids=["fast-forward", "rebase"])
@pytest.mark.parametrize("keep", [None, ".metadata.json"], ids=["everything", "data files"])
def test_a_branch_whose_files_an_orphan_sweep_deleted_fails_typed(lh, keep, main_moves):
    branch_with_own_files(lh)
    if main_moves:
        lh.table("raw.t").append(batch(range(3, 4)))
    main = ids(lh)
    swept = sweep(lh, keep)
    assert any(name.endswith(".parquet") for name in swept), swept
    for ref, read in [
        ("dev", lambda: ids(lh, "dev")),
        ("dev-done", lambda: ids(lh, "dev-done")),
        ("dev", lambda: lh.merge("dev", "main")),
    ]:
        with pytest.raises(StorageError) as failure:
            read()
        assert_names_the_way_out(failure.value, ref)
    # main lost nothing and gained nothing; other engines still read it.
    assert ids(lh) == main
    catalog = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
    try:
        assert sorted(catalog.load_table("raw.t").scan().to_arrow()["id"].to_pylist()) == main
    finally:
        catalog.engine.dispose()
    # The way out: drop the branch, make it again from main, re-run its writes.
    lh.delete_branch("dev")
    lh.create_branch("dev")
    lh.table("raw.t", ref="dev").append(batch(range(100, 102)))
    lh.merge("dev", "main")
    assert ids(lh) == [*main, 100, 101]
