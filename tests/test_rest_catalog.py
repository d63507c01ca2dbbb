"""phlo as a client of an Iceberg REST catalog: `Lakehouse.connect(catalog="http://…")` against
a real `phlo catalog serve` process on 127.0.0.1, with PyIceberg's RestCatalog on the same
server reading what phlo wrote and writing what phlo then reads and merges."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from tests.test_catalog_server import served

import phlo
import process_support
from phlo.errors import CommitConflictError, ConfigError

WORKERS = 2
ROUNDS = 3


def rows(table: pa.Table) -> dict[int, str]:
    """The plain-Python model of a table: value by id."""
    return {r["id"]: r["v"] for r in table.select(["id", "v"]).to_pylist()}


def batch(ids: range, v: str) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), "v": [v] * len(ids)})


def connect(uri: str, root: Path, **properties: str) -> phlo.Lakehouse:
    warehouse = f"file://{(root / 'warehouse').resolve()}"
    return phlo.Lakehouse.connect(catalog=uri, warehouse=warehouse, properties=properties)


@pytest.fixture
def root(lh: phlo.Lakehouse) -> Path:
    lh.create_table("raw.m", {"id": pa.int64(), "v": pa.string()})
    return lh.root


def test_phlo_writes_through_rest_and_pyiceberg_reads_then_the_other_way(root: Path):
    with served(root) as uri:
        lh = connect(uri, root)
        assert lh.namespaces() == ["raw"]
        table = lh.table("raw.m")
        table.append(batch(range(0, 10), "phlo"))
        model = {i: "phlo" for i in range(10)}
        table.merge(batch(range(5, 15), "merged"), "id")
        model.update({i: "merged" for i in range(5, 15)})

        catalog = RestCatalog("phlo", uri=uri)
        pyi = catalog.load_table("raw.m")
        assert rows(pyi.scan().to_arrow()) == model

        pyi.append(batch(range(100, 103), "pyiceberg"))
        model.update({i: "pyiceberg" for i in range(100, 103)})
        assert rows(table.scan().to_arrow()) == model
        table.merge(batch(range(101, 105), "phlo-again"), "id", write_mode="merge-on-read")
        model.update({i: "phlo-again" for i in range(101, 105)})
        assert rows(table.scan().to_arrow()) == model
        assert rows(catalog.load_table("raw.m").scan().to_arrow()) == model


def test_catalog_wide_features_are_config_errors_on_a_rest_catalog(root: Path):
    with served(root, "--token", "s3cret") as uri:
        with pytest.raises(ConfigError, match="REST catalog") as denied:
            connect(uri, root, token="wrong")
        assert "wrong" not in str(denied.value)
        lh = connect(uri, root, credential="phlo:s3cret")
        with pytest.raises(ConfigError, match="REST catalog"):
            lh.log()
        with pytest.raises(ConfigError, match="REST catalog"):
            lh.create_branch("dev")
        assert rows(lh.table("raw.m").scan().to_arrow()) == {}


def test_a_transaction_commits_two_tables_at_once_or_neither(root: Path):
    with served(root) as uri:
        lh = connect(uri, root)
        lh.create_table("raw.n", {"id": pa.int64(), "v": pa.string()})
        with lh.transaction() as tx:
            tx.table("raw.m").append(batch(range(0, 3), "tx"))
            tx.table("raw.n").append(batch(range(0, 2), "tx"))
            # The transaction reads its own writes; nobody else sees them before it ends.
            assert rows(tx.table("raw.m").scan().to_arrow()) == dict.fromkeys(range(3), "tx")
            assert rows(lh.table("raw.m").scan().to_arrow()) == {}
        assert tx.result is not None and tx.result.fast_forwarded == ["raw.m", "raw.n"]
        m, n = dict.fromkeys(range(3), "tx"), dict.fromkeys(range(2), "tx")
        catalog = RestCatalog("phlo", uri=uri)
        assert rows(catalog.load_table("raw.m").scan().to_arrow()) == m
        assert rows(catalog.load_table("raw.n").scan().to_arrow()) == n

        # Another writer moves raw.m under the transaction's upsert: nothing lands.
        with pytest.raises(CommitConflictError, match=r"raw\.m"):
            with lh.transaction() as tx:
                tx.table("raw.m").merge(batch(range(0, 1), "upserted"), "id")
                tx.table("raw.n").append(batch(range(10, 12), "lost"))
                catalog.load_table("raw.m").append(batch(range(50, 51), "pyiceberg"))
        m[50] = "pyiceberg"
        assert rows(lh.table("raw.m").scan().to_arrow()) == m
        assert rows(lh.table("raw.n").scan().to_arrow()) == n


def _merge_rounds(uri: str, root: str, worker: int, barrier, results) -> None:
    """Merges (merge-on-read) this worker's own keys, `ROUNDS` times, after the barrier."""
    lh = connect(uri, Path(root))
    failures = []
    barrier.wait()
    for r in range(ROUNDS):
        try:
            ids = range(worker * 100, worker * 100 + 5)
            lh.table("raw.m").merge(batch(ids, f"w{worker}r{r}"), "id", write_mode="merge-on-read")
        except CommitConflictError as e:
            failures.append(f"round {r}: {e}")
    results.put((worker, failures))


def test_two_processes_merging_disjoint_keys_both_land(root: Path):
    with served(root) as uri:
        ctx = process_support.context()
        barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
        procs = [
            ctx.Process(target=_merge_rounds, args=(uri, str(root), w, barrier, results))
            for w in range(WORKERS)
        ]
        for p in procs:
            p.start()
        reports = dict(results.get(timeout=600) for _ in procs)
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
        assert reports == {w: [] for w in range(WORKERS)}
        model = {w * 100 + i: f"w{w}r{ROUNDS - 1}" for w in range(WORKERS) for i in range(5)}
        assert rows(connect(uri, root).table("raw.m").scan().to_arrow()) == model
    # The server's own catalog (SQLite) has both workers' commits.
    assert rows(phlo.Lakehouse.open(root).table("raw.m").scan().to_arrow()) == model
