"""`with lh.transaction()` on every catalog (embedded SQLite, PostgreSQL, a REST catalog served
by a real `phlo catalog serve`): a block that raises leaves no file behind and changes no
table; a table created inside the transaction lands with its writes, or not at all."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from tests.test_catalog_server import served

import phlo
from phlo.errors import CommitConflictError, NoSuchTableError

SCHEMA = {"id": pa.int64(), "v": pa.string()}


class Boom(Exception):
    """The failure injected in the middle of a transaction's block."""


def rows(table: phlo.Table) -> dict[int, str]:
    """The plain-Python model of a table: value by id."""
    return {r["id"]: r["v"] for r in table.scan().to_arrow().to_pylist()}


def batch(ids: range, v: str) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "v": [v] * len(ids)})


def files(warehouse: Path) -> list[Path]:
    return sorted(p for p in warehouse.rglob("*") if p.is_file())


@contextlib.contextmanager
def lakehouse(kind: str, root: Path, postgres_url: str | None) -> Iterator[phlo.Lakehouse]:
    """A lakehouse with table raw.m holding one row, on catalog `kind`, its warehouse under
    `root / "warehouse"`."""
    warehouse = f"file://{(root / 'warehouse').resolve()}"
    with contextlib.ExitStack() as stack:
        if kind == "postgresql":
            assert postgres_url is not None
            lh = phlo.Lakehouse.connect(catalog=postgres_url, warehouse=warehouse)
            lh.create_namespace("raw")
        else:
            lh = phlo.Lakehouse.open(root)
            lh.create_namespace("raw")
        if kind == "rest":
            uri = stack.enter_context(served(root))
            lh = phlo.Lakehouse.connect(catalog=uri, warehouse=warehouse)
        lh.create_table("raw.m", SCHEMA).append(batch(range(0, 1), "before"))
        yield lh


@pytest.fixture(params=["sqlite", "postgresql", "rest"])
def catalog_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database(catalog_kind: str, request: pytest.FixtureRequest) -> str | None:
    """A fresh PostgreSQL database, only for the PostgreSQL case (the server starts once)."""
    return request.getfixturevalue("postgres_url") if catalog_kind == "postgresql" else None


def test_a_block_that_raises_leaves_no_file_and_changes_nothing(
    catalog_kind: str, database: str | None, tmp_path: Path
):
    with lakehouse(catalog_kind, tmp_path, database) as lh:
        warehouse = tmp_path / "warehouse"
        before = files(warehouse)
        with pytest.raises(Boom):
            with lh.transaction() as tx:
                tx.table("raw.m").append(batch(range(1, 3), "tx"))
                tx.table("raw.m").merge(batch(range(0, 1), "upserted"), "id")
                tx.create_table("raw.new", SCHEMA).append(batch(range(0, 2), "tx"))
                assert files(warehouse) != before, "the block wrote files"
                raise Boom("failed mid-block")
        assert files(warehouse) == before
        assert rows(lh.table("raw.m")) == {0: "before"}
        assert lh.tables("raw") == ["raw.m"]
        with pytest.raises(NoSuchTableError, match=r"raw\.new"):
            lh.table("raw.new")
        if catalog_kind != "rest":
            assert lh.branches() == ["main"]


def test_a_transaction_that_loses_to_another_writer_leaves_no_file(
    catalog_kind: str, database: str | None, tmp_path: Path
):
    with lakehouse(catalog_kind, tmp_path, database) as lh:
        warehouse = tmp_path / "warehouse"
        with pytest.raises(CommitConflictError, match=r"raw\.m"):
            with lh.transaction() as tx:
                tx.table("raw.m").scan().to_arrow()
                lh.table("raw.m").merge(batch(range(0, 1), "other"), "id")
                before = files(warehouse)
                # Both upsert key 0: the transaction's cannot be re-applied.
                tx.table("raw.m").merge(batch(range(0, 1), "upserted"), "id")
                tx.create_table("raw.new", SCHEMA).append(batch(range(0, 2), "tx"))
                assert files(warehouse) != before
        assert files(warehouse) == before
        assert rows(lh.table("raw.m")) == {0: "other"}
        assert lh.tables("raw") == ["raw.m"]


def test_a_table_created_in_a_rest_transaction_lands_with_its_writes_or_not_at_all(
    tmp_path: Path,
):
    with lakehouse("rest", tmp_path, None) as lh:
        with lh.transaction() as tx:
            tx.create_table("raw.c", SCHEMA).append(batch(range(0, 2), "tx"))
            tx.table("raw.m").append(batch(range(1, 2), "tx"))
            # Staged: the server has no raw.c until the transaction commits.
            assert lh.tables("raw") == ["raw.m"]
        assert tx.result is not None
        assert tx.result.added == ["raw.c"] and tx.result.fast_forwarded == ["raw.m"]
        uri = lh.catalog_uri
        pyi = RestCatalog("phlo", uri=uri)
        assert {r["id"]: r["v"] for r in pyi.load_table("raw.c").scan().to_arrow().to_pylist()} == {
            0: "tx",
            1: "tx",
        }
        assert rows(lh.table("raw.m")) == {0: "before", 1: "tx"}

        # PyIceberg creates raw.d while a transaction that creates it runs: nothing lands.
        before = files(tmp_path / "warehouse")
        with pytest.raises(CommitConflictError, match=r"raw\.d"):
            with lh.transaction() as tx:
                tx.create_table("raw.d", SCHEMA).append(batch(range(0, 1), "tx"))
                tx.table("raw.m").append(batch(range(5, 6), "lost"))
                pyi.create_table("raw.d", schema=pa.schema(SCHEMA))
        assert rows(lh.table("raw.m")) == {0: "before", 1: "tx"}
        assert rows(lh.table("raw.d")) == {}
        added = [f for f in files(tmp_path / "warehouse") if f not in before]
        assert [f.name.endswith(".metadata.json") for f in added] == [True], added
