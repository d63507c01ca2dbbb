"""A write that fails for good after writing its data files removes them (nothing references
them, and nothing else would: orphan removal only finds them later, and a REST catalog has
none): append, merge and delete in both write modes, compaction, and a transaction, each
failing between writing its files and the catalog swap (PHLO_FAILPOINTS), or while it writes
(a data file it reads is corrupt). A commit whose
outcome cannot be read back (`CommitStateUnknownError`) keeps every file instead: it landed,
and the table reads whole, in phlo and in PyIceberg."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

import phlo
from phlo.errors import CommitStateUnknownError, StorageError


def batch(ids: range | list[int], v: str) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "v": [v] * len(ids)})


def rows(table: phlo.Table) -> dict[int, str]:
    """The plain-Python model of a table: value by id."""
    return {r["id"]: r["v"] for r in table.to_arrow().to_pylist()}


def pyiceberg_rows(lh: phlo.Lakehouse) -> dict[int, str]:
    table = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse).load_table("raw.t")
    return {r["id"]: r["v"] for r in table.scan().to_arrow().to_pylist()}


def files(lh: phlo.Lakehouse) -> set[Path]:
    """Every file of raw.t: data, delete and metadata files."""
    return {p for p in (lh.root / "warehouse" / "raw.db" / "t").rglob("*") if p.is_file()}


@pytest.fixture
def table(lh: phlo.Lakehouse) -> phlo.Table:
    """raw.t holding ids 0..29 in three data files, every third row "third"."""
    t = lh.create_table("raw.t", {"id": pa.int64(), "v": pa.string()})
    for start in (0, 10, 20):
        ids = range(start, start + 10)
        t.append(pa.table({"id": list(ids), "v": ["third" if i % 3 == 0 else "a" for i in ids]}))
    return t


def in_transaction(lh: phlo.Lakehouse, monkeypatch: pytest.MonkeyPatch, points: str) -> None:
    """A transaction whose first write lands on its branch and whose second one fails."""
    with lh.transaction() as tx:
        tx.table("raw.t").append(batch(range(100, 105), "tx"))
        monkeypatch.setenv("PHLO_FAILPOINTS", points)
        tx.table("raw.t").merge(batch([1, 11], "tx"), "id")


# Each write, with the model update it makes when it lands; the merges and deletes touch every
# data file (a rewrite, or a position-delete file beside it).
WRITES: dict[str, tuple[Callable[[phlo.Table], Any], Callable[[dict[int, str]], object]]] = {
    "append": (
        lambda t: t.append(batch(range(100, 105), "new")),
        lambda m: m.update(dict.fromkeys(range(100, 105), "new")),
    ),
    "merge copy-on-write": (
        lambda t: t.merge(batch([1, 11, 21, 100], "m"), "id", write_mode="copy-on-write"),
        lambda m: m.update(dict.fromkeys([1, 11, 21, 100], "m")),
    ),
    "merge merge-on-read": (
        lambda t: t.merge(batch([1, 11, 21, 100], "m"), "id", write_mode="merge-on-read"),
        lambda m: m.update(dict.fromkeys([1, 11, 21, 100], "m")),
    ),
    "delete copy-on-write": (
        lambda t: t.delete(("v", "=", "third"), write_mode="copy-on-write"),
        lambda m: [m.pop(i) for i in range(0, 30, 3)],
    ),
    "delete merge-on-read": (
        lambda t: t.delete(("v", "=", "third"), write_mode="merge-on-read"),
        lambda m: [m.pop(i) for i in range(0, 30, 3)],
    ),
    "compact": (lambda t: t.compact(), lambda m: None),
}


def model() -> dict[int, str]:
    return {i: "third" if i % 3 == 0 else "a" for i in range(30)}


@pytest.mark.parametrize("write", [*WRITES, "transaction"])
def test_a_write_failing_before_the_swap_leaves_none_of_its_files(
    table: phlo.Table, lh: phlo.Lakehouse, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    before = files(lh)
    with pytest.raises(StorageError, match=r"commit\.after-manifests"):
        if write == "transaction":
            in_transaction(lh, monkeypatch, "commit.after-manifests")
        else:
            monkeypatch.setenv("PHLO_FAILPOINTS", "commit.after-manifests")
            WRITES[write][0](table)
    monkeypatch.delenv("PHLO_FAILPOINTS")
    assert files(lh) == before
    assert rows(table) == pyiceberg_rows(lh) == model()
    assert lh.branches() == ["main"]


@pytest.mark.parametrize("write", WRITES)
def test_an_unknown_outcome_keeps_every_file_and_the_table_reads_whole(
    table: phlo.Table, lh: phlo.Lakehouse, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    run, expect = WRITES[write]
    before = files(lh)
    monkeypatch.setenv("PHLO_FAILPOINTS", "commit.after-swap,commit.read-outcome")
    with pytest.raises(CommitStateUnknownError, match=r"raw\.t"):
        run(table)
    monkeypatch.delenv("PHLO_FAILPOINTS")
    # The swap landed: the new snapshot is live, and no file of it was removed.
    expected = model()
    expect(expected)
    assert rows(table) == pyiceberg_rows(lh) == expected
    assert before < files(lh)
    data = [p for p in files(lh) - before if p.suffix == ".parquet"]
    assert data, "the write kept its data files"
    table.append(batch([200], "after"))
    assert rows(table) == {**expected, 200: "after"}


@pytest.mark.parametrize("write", [w for w in WRITES if w != "append"])
def test_a_write_failing_while_it_writes_leaves_none_of_its_files(
    table: phlo.Table, lh: phlo.Lakehouse, write: str
) -> None:
    """The data file read last is corrupt: by then the write has begun files for the rows it
    read before (a rewrite, or position deletes). Merges and deletes read the oldest file last
    (manifest order), compaction the newest (commit order)."""
    data = sorted(
        (p for p in files(lh) if p.suffix == ".parquet"), key=lambda p: p.stat().st_mtime_ns
    )
    corrupt = data[-1] if write == "compact" else data[0]
    corrupt.write_bytes(b"\x07" * corrupt.stat().st_size)
    before = files(lh)
    with pytest.raises(phlo.errors.PhloError, match=corrupt.name):
        WRITES[write][0](table)
    assert files(lh) == before


@pytest.mark.parametrize("mode", ["copy-on-write", "merge-on-read"])
def test_a_delete_plan_that_never_reaches_its_commit_leaves_none_of_its_files(
    table: phlo.Table, lh: phlo.Lakehouse, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """The plan is dropped with its files written, as a Ctrl-C while a delete plans drops it:
    it removes them in the background (Drop cannot wait), so the test waits, bounded."""
    before = files(lh)
    monkeypatch.setenv("PHLO_FAILPOINTS", "delete.before-commit")
    with pytest.raises(StorageError, match=r"delete\.before-commit"):
        table.delete(("v", "=", "third"), write_mode=mode)
    monkeypatch.delenv("PHLO_FAILPOINTS")
    for _ in range(3000):
        if files(lh) == before:
            break
        time.sleep(0.01)
    assert files(lh) == before
    assert rows(table) == pyiceberg_rows(lh) == model()
