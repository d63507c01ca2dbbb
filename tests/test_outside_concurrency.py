"""Writers racing each other on every catalog (embedded SQLite, PostgreSQL, a REST catalog served
by a real `phlo catalog serve`): a transaction's merge that inserted keys another writer
inserted meanwhile never lands them twice, and processes started behind a barrier merging the
same keys (directly, in two-table transactions, and through branches where the catalog has them)
lose no commit, leave every key once, keep the two tables of a transaction equal, and fail only
with `CommitConflictError`. Every result is compared with a plain-Python model of the rows."""

from __future__ import annotations

import collections
import contextlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from tests import test_transaction_cleanup as cleanup
from tests.test_transaction_cleanup import batch, lakehouse, rows

import phlo
import process_support
from phlo.errors import CommitConflictError

# The catalogs and their databases, as the transaction cleanup tests make them.
catalog_kind = cleanup.catalog_kind
database = cleanup.database
WORKERS = 3
ROUNDS = 4


def key_counts(table: phlo.Table) -> dict[int, int]:
    """Keys held by more than one row."""
    ids = table.scan().to_arrow().column("id").to_pylist()
    return {k: n for k, n in collections.Counter(ids).items() if n > 1}


@pytest.mark.parametrize("overlap", [True, False], ids=["same-keys", "other-keys"])
def test_a_transaction_merge_racing_an_insert_of_its_keys_never_duplicates_them(
    catalog_kind: str, database: str | None, tmp_path: Path, overlap: bool
) -> None:
    with lakehouse(catalog_kind, tmp_path, database) as lh:
        theirs = range(1, 6) if overlap else range(11, 16)
        model = {0: "before", **dict.fromkeys(theirs, "theirs")}
        with (
            pytest.raises(CommitConflictError, match=r"raw\.m")
            if overlap
            else contextlib.nullcontext()
        ):
            with lh.transaction() as tx:
                merged = tx.table("raw.m").merge(batch(range(1, 6), "tx"), "id")
                assert (merged.rows_inserted, merged.rows_updated) == (5, 0)
                lh.table("raw.m").merge(batch(theirs, "theirs"), "id")
        if not overlap:
            model.update(dict.fromkeys(range(1, 6), "tx"))
        assert key_counts(lh.table("raw.m")) == {}
        assert rows(lh.table("raw.m")) == model


def _connect(kind: str, root: str, uri: str | None) -> phlo.Lakehouse:
    if kind == "sqlite":
        return phlo.Lakehouse.open(root)
    warehouse = f"file://{Path(root, 'warehouse').resolve()}"
    return phlo.Lakehouse.connect(catalog=uri, warehouse=warehouse)


def _round_batch(worker: int, r: int) -> pa.Table:
    """Round `r` upserts keys 3r..3r+5: half of them the previous round's, half new."""
    return batch(range(3 * r, 3 * r + 6), f"w{worker}r{r}")


def _race(kind: str, root: str, uri: str | None, worker: int, barrier: Any, results: Any) -> None:
    lh = _connect(kind, root, uri)
    outcomes = []
    barrier.wait()
    for r in range(ROUNDS):
        try:
            match r % 3:
                case 0:
                    lh.table("raw.a").merge(_round_batch(worker, r), "id")
                    lh.table("raw.b").merge(_round_batch(worker, r), "id")
                case 1:
                    with lh.transaction() as tx:
                        tx.table("raw.a").merge(_round_batch(worker, r), "id")
                        tx.table("raw.b").merge(_round_batch(worker, r), "id")
                case _ if kind == "rest":  # no branches: a two-table append instead
                    with lh.transaction() as tx:
                        for name in ("raw.a", "raw.b"):
                            tx.table(name).append(batch(range(1000 + worker, 1001 + worker), "x"))
                case _:
                    branch = f"run-{worker}-{r}"
                    lh.create_branch(branch)
                    try:
                        for name in ("raw.a", "raw.b"):
                            lh.table(name, ref=branch).merge(_round_batch(worker, r), "id")
                        lh.merge(branch, "main")
                    finally:
                        lh.delete_branch(branch)
            outcomes.append((r, "ok"))
        except CommitConflictError:
            outcomes.append((r, "conflict"))
        except Exception as e:  # any other failure is reported and fails the test
            outcomes.append((r, f"{type(e).__name__}: {e}"))
    results.put((worker, outcomes))


def test_processes_merging_the_same_keys_lose_nothing_and_duplicate_nothing(
    catalog_kind: str, database: str | None, tmp_path: Path
) -> None:
    with lakehouse(catalog_kind, tmp_path, database) as lh:
        for name in ("raw.a", "raw.b"):
            lh.create_table(name, {"id": pa.int64(), "v": pa.string()})
        uri = {"sqlite": None, "postgresql": database, "rest": lh.catalog_uri}[catalog_kind]
        ctx = process_support.context()
        barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
        procs = [
            ctx.Process(target=_race, args=(catalog_kind, str(tmp_path), uri, w, barrier, results))
            for w in range(WORKERS)
        ]
        for p in procs:
            p.start()
        outcomes = dict(results.get(timeout=600) for _ in procs)
        for p in procs:
            p.join(timeout=60)
        assert {o for out in outcomes.values() for _, o in out} <= {"ok", "conflict"}, outcomes
        landed = {(w, r) for w, out in outcomes.items() for r, o in out if o == "ok"}
        a, b = rows(lh.table("raw.a")), rows(lh.table("raw.b"))
        for name in ("raw.a", "raw.b"):
            assert key_counts(lh.table(name)) == {}, name
        # Every key of a round that landed is there, and no key of a round that never wrote
        # (a direct merge, round 0 or 3, may land on raw.a and conflict on raw.b).
        merged = {(w, r) for w, r in landed if not (catalog_kind == "rest" and r % 3 == 2)}
        wrote = merged | {(w, r) for w in range(WORKERS) for r in range(ROUNDS) if r % 3 == 0}
        appended = {1000 + w for w, r in landed if catalog_kind == "rest" and r % 3 == 2}
        keys = {k for _, r in merged for k in range(3 * r, 3 * r + 6)} | appended
        assert keys <= set(a) <= keys | {k for _, r in wrote for k in range(3 * r, 3 * r + 6)}
        assert {v for k, v in a.items() if k < 1000} <= {f"w{w}r{r}" for w, r in wrote}
        # Transactions and branch merges land both tables or neither: keys 6..8 are written by
        # round 1 and 2 alone.
        assert {k: a[k] for k in a if 6 <= k <= 8} == {k: b[k] for k in b if 6 <= k <= 8}
