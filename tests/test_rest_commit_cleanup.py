"""A single-table write through a REST catalog (a real `phlo catalog serve`) that loses its
first commit to another writer (409) and lands re-applied leaves no file of its first attempt
behind and deletes nothing the table references: after append, merge (copy-on-write and
merge-on-read), delete and compact, every manifest and manifest list under the table's
`metadata/` is one a snapshot references, and the rows are the plain model's; one that fails
for good leaves none of its manifests nor data files."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from tests.test_catalog_server import served

import phlo
from s3_requests import Request, counting_proxy

SCHEMA = {"id": pa.int64(), "v": pa.string()}


def batch(ids: range, v: str) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "v": [v] * len(ids)})


def rows(table: phlo.Table) -> dict[int, str]:
    """The plain-Python model of a table: value by id."""
    return {r["id"]: r["v"] for r in table.to_arrow().to_pylist()}


def avro_files(table_dir: Path) -> set[str]:
    """The manifests and manifest lists under the table's metadata folder."""
    return {p.name for p in (table_dir / "metadata").glob("*.avro")}


def data_files(table_dir: Path) -> set[str]:
    """The data and delete files under the table's data folder."""
    return {p.name for p in (table_dir / "data").rglob("*.parquet")}


def referenced(catalog: RestCatalog, name: str) -> set[str]:
    """The manifest lists and manifests the table's snapshots reference."""
    table = catalog.load_table(name)
    names = set()
    for snapshot in table.snapshots():
        names.add(snapshot.manifest_list.rsplit("/", 1)[-1])
        for manifest in snapshot.manifests(table.io):
            names.add(manifest.manifest_path.rsplit("/", 1)[-1])
    return names


@pytest.fixture
def served_lakehouse(lh: phlo.Lakehouse) -> Iterator[tuple[str, Path]]:
    """`phlo catalog serve` on an embedded lakehouse with raw.m holding ids 0..9 in two
    files; yields its URI and the table's folder."""
    table = lh.create_table("raw.m", SCHEMA)
    table.append(batch(range(0, 5), "a"))
    table.append(batch(range(5, 10), "a"))
    with served(lh.root) as uri:
        yield uri, lh.root / "warehouse" / "raw.db" / "m"


def connect(uri: str, root: Path) -> phlo.Lakehouse:
    warehouse = f"file://{(root / 'warehouse').resolve()}"
    return phlo.Lakehouse.connect(catalog=uri, warehouse=warehouse)


def before_first_commit(hook: Callable[[], None]) -> Callable[[Request], None]:
    """A proxy hook running `hook` (another writer's commit) right before the first commit
    request for raw.m is passed on, so that commit loses the race (409)."""
    done = threading.Event()

    def before(request: Request) -> None:
        if request.method == "POST" and request.path.endswith("/tables/m"):
            if not done.is_set():
                done.set()
                hook()

    return before


# Each write, with the model update it makes; none touches ids 100.. (the other writer's).
WRITES: dict[str, tuple[Callable[[phlo.Table], Any], Callable[[dict[int, str]], object]]] = {
    "append": (
        lambda t: t.append(batch(range(10, 15), "appended")),
        lambda m: m.update(dict.fromkeys(range(10, 15), "appended")),
    ),
    "merge copy-on-write": (
        lambda t: t.merge(batch(range(3, 8), "merged"), "id", write_mode="copy-on-write"),
        lambda m: m.update(dict.fromkeys(range(3, 8), "merged")),
    ),
    "merge merge-on-read": (
        lambda t: t.merge(batch(range(3, 8), "merged"), "id", write_mode="merge-on-read"),
        lambda m: m.update(dict.fromkeys(range(3, 8), "merged")),
    ),
    "delete": (
        lambda t: t.delete(("id", "<", 3)),
        lambda m: [m.pop(i) for i in range(3)],
    ),
    "compact": (
        lambda t: t.compact(),
        lambda m: None,
    ),
}


@pytest.mark.parametrize("write", WRITES)
def test_a_write_re_applied_after_a_409_leaves_only_referenced_manifests(
    served_lakehouse: tuple[str, Path], write: str
) -> None:
    uri, table_dir = served_lakehouse
    root = table_dir.parents[2]
    other = connect(uri, root).table("raw.m")
    catalog = RestCatalog("phlo", uri=uri)
    model = dict.fromkeys(range(10), "a")
    run, expect = WRITES[write]
    with counting_proxy(uri) as (proxied, requests):
        requests.before = before_first_commit(lambda: other.append(batch(range(100, 102), "other")))
        result = run(connect(proxied, root).table("raw.m"))
    assert result.commit_retries == 1, result
    expect(model)
    model.update(dict.fromkeys(range(100, 102), "other"))
    assert rows(other) == model
    # No manifest or manifest list of the lost first attempt is left, and every one a
    # snapshot references is there.
    assert avro_files(table_dir) == referenced(catalog, "raw.m")


@pytest.mark.parametrize("write", WRITES)
def test_a_write_failing_after_its_manifests_are_written_leaves_none_of_them(
    served_lakehouse: tuple[str, Path], write: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing on a REST catalog removes orphans: an attempt that fails after writing its
    manifests (here an injected failure; in life an I/O error or a conflict found late) must
    remove them itself. The server runs in its own process, so only the client fails."""
    uri, table_dir = served_lakehouse
    table = connect(uri, table_dir.parents[2]).table("raw.m")
    before = avro_files(table_dir)
    data_before = data_files(table_dir)
    monkeypatch.setenv("PHLO_FAILPOINTS", "commit.after-manifests")
    with pytest.raises(phlo.errors.StorageError, match=r"commit\.after-manifests"):
        WRITES[write][0](table)
    monkeypatch.delenv("PHLO_FAILPOINTS")
    assert avro_files(table_dir) == before == referenced(RestCatalog("phlo", uri=uri), "raw.m")
    # Nor any data or delete file it wrote.
    assert data_files(table_dir) == data_before
    assert rows(table) == dict.fromkeys(range(10), "a")
