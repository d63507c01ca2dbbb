"""A DuckDB transaction through `phlo catalog serve` — INSERT, DELETE (merge-on-read position
deletes) or UPDATE begun, then a phlo write commits to the same branch (main, or a phlo branch
DuckDB attached), then DuckDB commits. DuckDB's commit must fail (409: the branch moved under
its snapshot) and leave phlo's write whole; run again, it lands on top of it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tests.duckdb_support import DuckdbSession
from tests.outside_support import BEFORE, Model, batch, seeded

import phlo
from phlo.catalog_server import CatalogServer

# DuckDB's statement and what it does to the rows.
DUCKDB: dict[str, tuple[str, Callable[[Model], Model]]] = {
    "insert": ("INSERT INTO lake.raw.t VALUES (99, 'duck')", lambda m: {**m, 99: "duck"}),
    "delete": (
        "DELETE FROM lake.raw.t WHERE id = 7",
        lambda m: {k: v for k, v in m.items() if k != 7},
    ),
    "update": ("UPDATE lake.raw.t SET v = 'duck' WHERE id = 8", lambda m: {**m, 8: "duck"}),
}
# phlo's write on the same branch meanwhile, and what it does.
PHLO: dict[str, tuple[Callable[[phlo.Table], object], Callable[[Model], Model]]] = {
    "append": (lambda t: t.append(batch({300: "p"})), lambda m: {**m, 300: "p"}),
    "merge-on-read merge": (
        lambda t: t.merge(batch({5: "p", 8: "p"}), "id", write_mode="merge-on-read"),
        lambda m: {**m, 5: "p", 8: "p"},
    ),
}


@pytest.mark.parametrize("ref", ["main", "dev"])
@pytest.mark.parametrize("write", list(PHLO))
@pytest.mark.parametrize("statement", list(DUCKDB))
def test_a_duckdb_transaction_losing_to_a_phlo_write_fails_whole(
    tmp_path: Path, statement: str, write: str, ref: str
) -> None:
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    if ref != "main":
        lh.create_branch(ref)
    sql, duck = DUCKDB[statement]
    phlo_write, theirs = PHLO[write]
    table = lh.table("raw.t", ref=ref)
    with CatalogServer(lh, port=0) as server:
        session = DuckdbSession(f"{server.uri}/iceberg/{ref}" if ref != "main" else server.uri)
        try:
            assert session.run("BEGIN")[0] == "ok"
            assert session.run(sql)[0] == "ok"
            phlo_write(table)
            kind, message = session.run("COMMIT")
            assert kind == "TransactionException" and "409" in str(message), message
            model = theirs(dict(BEFORE))
            assert rows(lh, ref) == model
            assert session.run(sql)[0] == "ok"  # autocommit, on top of phlo's write
        finally:
            session.close()
    assert rows(lh, ref) == duck(model)
    if ref != "main":
        assert rows(lh, "main") == BEFORE


def rows(lh: phlo.Lakehouse, ref: str) -> Model:
    got = lh.table("raw.t", ref=ref).scan().to_arrow().to_pylist()
    model = {r["id"]: r["v"] for r in got}
    assert len(model) == len(got), "a key is there twice"
    return model
