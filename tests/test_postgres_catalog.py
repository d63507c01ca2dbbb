"""The versioned catalog on a real PostgreSQL (`postgres_url`: a fresh database per test):
`Lakehouse.connect` round trips, PyIceberg's SqlCatalog on the same database both ways, several
processes committing at once (nothing lost), and connection failures as typed errors that never
show the password."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing as mp
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

import phlo
import process_support
from phlo.errors import CatalogError, ConfigError, InputError
from postgres_server import running_server

WORKERS = 4
ROUNDS = 6
SECRET = "hunter2-secret"


def with_password(url: str, password: str) -> str:
    """`url` with `password` for user phlo (the test server trusts 127.0.0.1: any is accepted)."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"phlo:{password}@{parts.hostname}:{parts.port}").geturl()


def connect(url: str, warehouse: Path) -> phlo.Lakehouse:
    return phlo.Lakehouse.connect(url, f"file://{warehouse}")


@contextlib.contextmanager
def pyiceberg_catalog(lh: phlo.Lakehouse) -> Iterator[SqlCatalog]:
    """PyIceberg's SqlCatalog on the lakehouse's database; its connections are closed after."""
    catalog = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
    try:
        yield catalog
    finally:
        catalog.engine.dispose()


def ids(table: phlo.Table) -> list[int]:
    return sorted(table.scan().to_arrow().column("id").to_pylist())


def test_connect_round_trip_branches_and_log(postgres_url, tmp_path):
    lh = connect(with_password(postgres_url, SECRET), tmp_path / "wh")
    assert SECRET not in repr(lh) and SECRET not in lh._repr_html_()
    lh.create_namespace("raw")
    table = lh.create_table("raw.events", {"id": pa.int64(), "v": pa.string()})
    table.append([{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
    lh.create_branch("dev")
    lh.table("raw.events", ref="dev").append([{"id": 3, "v": "c"}])
    assert ids(lh.table("raw.events")) == [1, 2], "main does not see the branch"
    lh.merge("dev")
    # Another connection (another worker) sees the same catalog.
    other = connect(postgres_url, tmp_path / "wh")
    assert ids(other.table("raw.events")) == [1, 2, 3]
    assert other.branches() == ["main", "dev"]
    messages = [e.message for e in other.log("main")]
    assert messages[0].startswith("merge dev into main")
    assert [e.tables for e in other.log("dev")][-1] == [], "the branch's creation is logged"
    with pytest.raises(phlo.errors.NoSuchTableError):
        other.table("raw.nope")


def test_pyiceberg_reads_main_and_its_appends_are_seen(postgres_url, tmp_path):
    lh = connect(postgres_url, tmp_path / "wh")
    lh.create_namespace("raw")
    lh.create_table("raw.t", {"id": pa.int64()}).append([{"id": 1}, {"id": 2}])
    assert lh.catalog_uri.startswith("postgresql+psycopg://")
    with pyiceberg_catalog(lh) as pyi:
        table = pyi.load_table("raw.t")
        assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [1, 2]
        table.append(pa.table({"id": pa.array([3], pa.int64())}))
        assert ids(lh.table("raw.t")) == [1, 2, 3]
        # A table PyIceberg creates is on phlo's main too.
        pyi.create_table("raw.made_by_pyiceberg", schema=pa.schema([("x", pa.int64())]))
    assert "raw.made_by_pyiceberg" in lh.tables("raw")


def _append_in_child(lh: phlo.Lakehouse) -> None:
    for i in range(10, 20):
        lh.table("raw.t").append([{"id": i}])
    del lh
    gc.collect()  # closing the child's catalog must leave the parent's session alone


def test_a_forked_child_uses_its_own_connection(postgres_url, tmp_path):
    lh = connect(postgres_url, tmp_path / "wh")
    lh.create_namespace("raw")
    table = lh.create_table("raw.t", {"id": pa.int64()})
    table.append([{"id": 1}])
    child = mp.get_context("fork").Process(target=_append_in_child, args=(lh,))
    child.start()
    for i in range(20, 30):  # at the same time as the child: one shared session would break
        table.append([{"id": i}])
    child.join(timeout=120)
    assert child.exitcode == 0
    table.append([{"id": 3}])
    assert ids(lh.table("raw.t")) == [1, 3, *range(10, 30)]


def _commit_rounds(url: str, warehouse: str, worker: int, barrier, results) -> None:
    """Per round: a transaction over the shared table and this worker's own table, then a
    branch with an upsert of this worker's keys, merged into main."""
    lh = phlo.Lakehouse.connect(url, warehouse)
    failures = []
    barrier.wait()
    for r in range(ROUNDS):
        key = worker * 1000 + r
        try:
            with lh.transaction(message=f"w{worker} r{r}") as tx:
                tx.table("raw.shared").append([{"id": key}])
                tx.table(f"raw.own{worker}").append([{"id": key}])
            branch = f"run-{worker}-{r}"
            lh.create_branch(branch)
            lh.table("raw.upserts", ref=branch).merge([{"id": key, "w": worker}], unique_key="id")
            lh.merge(branch)
            lh.delete_branch(branch)
        except Exception as e:  # every failure is reported, none may happen
            failures.append(f"round {r}: {type(e).__name__}: {e}")
    results.put((worker, failures))


def test_concurrent_writers_in_processes_lose_no_commit(postgres_url, tmp_path):
    warehouse = f"file://{tmp_path / 'wh'}"
    lh = phlo.Lakehouse.connect(postgres_url, warehouse)
    lh.create_namespace("raw")
    for name in ["raw.shared", *(f"raw.own{w}" for w in range(WORKERS))]:
        lh.create_table(name, {"id": pa.int64()})
    lh.create_table("raw.upserts", {"id": pa.int64(), "w": pa.int64()})
    ctx = process_support.context()
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [
        ctx.Process(target=_commit_rounds, args=(postgres_url, warehouse, w, barrier, results))
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    reports = dict(results.get(timeout=600) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert reports == {w: [] for w in range(WORKERS)}, "no conflicts, no lost races surfacing"
    keys = {w: [w * 1000 + r for r in range(ROUNDS)] for w in range(WORKERS)}
    assert ids(lh.table("raw.shared")) == sorted(k for ks in keys.values() for k in ks)
    for w in range(WORKERS):
        assert ids(lh.table(f"raw.own{w}")) == keys[w]
    upserts = lh.table("raw.upserts").scan().to_arrow().to_pylist()
    model = {k: w for w, ks in keys.items() for k in ks}
    assert {row["id"]: row["w"] for row in upserts} == model and len(upserts) == len(model)
    log = lh.log("main", limit=10_000)
    transactions = sorted((e.message, e.tables) for e in log if e.message.startswith("w"))
    expected = sorted(
        (f"w{w} r{r}", [f"raw.own{w}", "raw.shared"]) for w in range(WORKERS) for r in range(ROUNDS)
    )
    assert transactions == expected, "one log entry per transaction, with both tables"
    merges = [e for e in log if e.tables == ["raw.upserts"] and e.message.startswith("merge run-")]
    assert len(merges) == WORKERS * ROUNDS, "one log entry per branch merge"
    assert lh.branches() == ["main"]
    with pyiceberg_catalog(lh) as pyi:
        assert pyi.load_table("raw.shared").scan().to_arrow().num_rows == WORKERS * ROUNDS


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_bad_uri_wrong_password_and_server_down_are_typed_errors(tmp_path):
    warehouse = f"file://{tmp_path / 'wh'}"
    with running_server(password="the-right-one") as url:
        wrong = with_password(url, SECRET)
        with pytest.raises(CatalogError, match="password authentication failed") as failed:
            phlo.Lakehouse.connect(wrong, warehouse)
        assert "check that the server is running" in str(failed.value)
        assert SECRET not in str(failed.value)
        port = urlsplit(url).port
    down = f"postgresql://phlo:{SECRET}@127.0.0.1:{port}/postgres"
    with pytest.raises(CatalogError, match="check that the server is running") as failed:
        phlo.Lakehouse.connect(down, warehouse)
    assert SECRET not in str(failed.value)
    bad_uris: list[tuple[str, type[Exception], str]] = [
        (f"postgresql://phlo:{SECRET}@127.0.0.1:notaport/x", InputError, "not a PostgreSQL URL"),
        (f"mysql://phlo:{SECRET}@127.0.0.1:{_free_port()}/x", ConfigError, "is not supported"),
    ]
    for bad, error, says in bad_uris:
        with pytest.raises(error, match=says) as failed:
            phlo.Lakehouse.connect(bad, warehouse)
        assert SECRET not in str(failed.value)
    with pytest.raises(ConfigError, match="file:///absolute"):
        phlo.Lakehouse.connect(f"sqlite:///{tmp_path / 'c.db'}", "s4://bucket/x")
