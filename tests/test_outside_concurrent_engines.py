"""phlo and PyIceberg writing one table at the same time, in processes started together behind a
barrier, on the embedded SQLite catalog and PostgreSQL. PyIceberg (its SqlCatalog on the same
database) appends, deletes and upserts; one phlo process merges (copy-on-write and
merge-on-read, alternately) keys PyIceberg upserts too; another deletes (merge-on-read),
compacts, expires snapshots and removes orphan files. Each writer retries a lost commit a
bounded number of times. Afterwards every commit that reported success is in the table, no
commit that failed is, nothing else is (no row lost, none resurrected or twice), every file the
table references exists, and phlo and PyIceberg read the same rows."""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table
from tests.outside_support import (
    BEFORE,
    HELD,
    Model,
    assert_reads,
    batch,
    duckdb,
    held,
    next_write_succeeds,
    outcome_of,
    pyiceberg,
    pyiceberg_table,
    seeded,
)

import phlo
import process_support
from phlo.catalog_server import CatalogServer
from phlo.errors import CommitConflictError

ROUNDS = 4
ATTEMPTS = 6
# Keys both engines upsert, all at once: the table must show all of them from one write.
SHARED = range(0, 5)


def _pyiceberg(uri: str, warehouse: str, barrier: Any, results: Any) -> None:
    """Per round: appends key 1000+r, deletes key 20+r, upserts SHARED to "py{r}"."""
    from pyiceberg.catalog.rest import RestCatalog
    from pyiceberg.exceptions import CommitFailedException, ValidationException
    from pyiceberg.expressions import EqualTo

    rest = uri.startswith("http")
    catalog = (
        RestCatalog("rest", uri=uri) if rest else SqlCatalog("phlo", uri=uri, warehouse=warehouse)
    )
    outcomes = []
    barrier.wait()
    for r in range(ROUNDS):
        writes = {
            "append": lambda t, r=r: t.append(batch({1000 + r: "py"})),
            "delete": lambda t, r=r: t.delete(EqualTo("id", 20 + r)),
            "upsert": lambda t, r=r: t.upsert(batch(dict.fromkeys(SHARED, f"py{r}")), ["id"]),
        }
        for name, write in writes.items():
            # Lost the race, found a conflict, or the snapshot it started from was expired
            # (and its files removed) by phlo meanwhile: nothing landed, start again.
            outcomes.append(
                (
                    name,
                    r,
                    outcome_of(
                        lambda w=write: w(catalog.load_table("raw.t")),
                        (CommitFailedException, ValidationException, FileNotFoundError),
                        ATTEMPTS,
                    ),
                )
            )
    if not rest:
        catalog.engine.dispose()
    results.put(("pyiceberg", outcomes))


def _phlo(uri: str, warehouse: str, role: str, barrier: Any, results: Any) -> None:
    """ "merger": per round upserts SHARED to "ph{r}" and 5..9 to "m{r}". "maintainer": per
    round deletes key 10+r, compacts, expires all but the last snapshot, removes orphans."""
    lh = phlo.Lakehouse.connect(catalog=uri, warehouse=warehouse)
    table = lh.table("raw.t")
    outcomes = []
    barrier.wait()
    for r in range(ROUNDS):
        mode = "merge-on-read" if r % 2 else "copy-on-write"
        if role == "merger":
            rows = {**dict.fromkeys(SHARED, f"ph{r}"), **dict.fromkeys(range(5, 10), f"m{r}")}
            writes = {
                "merge": lambda rows=rows, m=mode: table.merge(batch(rows), "id", write_mode=m)
            }
        else:
            writes = {
                "delete": lambda r=r: table.delete(("id", "=", 10 + r), write_mode="merge-on-read"),
                "compact": table.compact,
                "expire": lambda: lh.expire_snapshots(older_than=dt.timedelta(0), keep_last=1),
                "orphans": lh.remove_orphan_files,
            }
            if uri.startswith("http"):  # catalog-wide maintenance is not a REST client's
                del writes["expire"], writes["orphans"]
        for name, write in writes.items():
            outcomes.append((name, r, outcome_of(write, (CommitConflictError,), ATTEMPTS)))
    results.put((role, outcomes))


def race(warehouse: str, pyiceberg_uri: str, phlo_uri: str) -> dict[str, list]:
    """Runs the three writers, started together; the outcomes each reports."""
    ctx = process_support.context()
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [
        ctx.Process(target=_pyiceberg, args=(pyiceberg_uri, warehouse, barrier, results)),
        *(
            ctx.Process(target=_phlo, args=(phlo_uri, warehouse, role, barrier, results))
            for role in ("merger", "maintainer")
        ),
    ]
    for p in procs:
        p.start()
    outcomes = dict(results.get(timeout=600) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    return outcomes


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "rest"])
def test_phlo_and_pyiceberg_writing_at_once_lose_and_resurrect_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    """On "rest" every writer is a client of one `phlo catalog serve` (PyIceberg's
    RestCatalog), on a SQLite catalog."""
    if kind == "postgresql":
        catalog = str(request.getfixturevalue("postgres_url"))
    else:
        catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    lh = seeded(catalog, tmp_path)
    with contextlib.ExitStack() as stack:
        uris = (lh.catalog_uri, catalog)
        if kind == "rest":
            server = stack.enter_context(CatalogServer(lh, port=0))
            uris = (server.uri, server.uri)
        outcomes = race(lh.warehouse, *uris)
    every = [(who, *o) for who, out in outcomes.items() for o in out]
    assert {o for *_, o in every} <= {"ok", "conflict"}, every
    landed = {(name, r) for _, name, r, o in every if o == "ok"}

    model: Model = dict(BEFORE)
    for r in range(ROUNDS):
        if ("append", r) in landed:
            model[1000 + r] = "py"
    # PyIceberg deletes 20+r, phlo deletes 10+r: both report "delete"; tell them by the key.
    py_deletes = {
        r for who, name, r, o in every if who == "pyiceberg" and name == "delete" and o == "ok"
    }
    phlo_deletes = {
        r for who, name, r, o in every if who == "maintainer" and name == "delete" and o == "ok"
    }
    for r in py_deletes:
        model.pop(20 + r)
    for r in phlo_deletes:
        model.pop(10 + r)
    merged = [r for who, name, r, o in every if who == "merger" and o == "ok"]
    if merged:
        model.update(dict.fromkeys(range(5, 10), f"m{max(merged)}"))
    shared_values = (
        {"a"}
        | {f"ph{r}" for r in merged}
        | {
            f"py{r}"
            for who, name, r, o in every
            if who == "pyiceberg" and name == "upsert" and o == "ok"
        }
    )

    with pyiceberg_table(lh) as pyi:
        for task in pyi.scan().plan_files():
            for file in [task.file, *task.delete_files]:
                path = Path(file.file_path.removeprefix("file://"))
                assert path.is_file(), f"raw.t references the missing {path}"
        reads = {"phlo": lh.table("raw.t").scan().to_arrow(), "pyiceberg": pyi.scan().to_arrow()}
    for reader, table in reads.items():
        rows = table.to_pylist()
        counts = collections.Counter(r["id"] for r in rows)
        assert {k: n for k, n in counts.items() if n > 1} == {}, (reader, every)
        got = {r["id"]: r["v"] for r in rows}
        shared = {got.pop(k, None) for k in SHARED}
        # Every upsert writes all shared keys: the table shows one write's value for all.
        assert len(shared) == 1 and shared <= shared_values, (reader, shared, every)
        assert got == {k: v for k, v in model.items() if k not in SHARED}, (reader, every)


# A held phlo merge (keys 5, 15, 99) while another engine inserts one of its keys: the merge
# must refuse (the key would be there twice) or land over a write that did not add it.
INSERTS: dict[str, Callable[[phlo.Lakehouse], object]] = {
    "PyIceberg append": lambda lh: pyiceberg(lh, lambda t: t.append(batch({99: "other"}))),
    "PyIceberg upsert": lambda lh: pyiceberg(lh, lambda t: t.upsert(batch({99: "other"}), ["id"])),
    "DuckDB insert": lambda lh: duckdb(lh, "INSERT INTO lake.raw.t VALUES (99, 'other')"),
}


@pytest.mark.parametrize("racer", list(INSERTS))
@pytest.mark.parametrize("write", ["merge-on-read merge", "copy-on-write merge"])
def test_a_held_merge_never_duplicates_a_key_another_engine_inserted(
    tmp_path: Path, write: str, racer: str
) -> None:
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    lh = seeded(catalog, tmp_path)
    code = HELD[write][0]
    with held(lh, catalog, code, "commit.after-manifests", tmp_path / "fp") as writer:
        INSERTS[racer](lh)
        kind, message = writer.finish()
    # The racer inserted key 99 the held merge inserts too: a conflict is the only safe end.
    assert kind == CommitConflictError.__name__ and "raw.t" in message, (kind, message)
    model = {**BEFORE, 99: "other"}
    assert_reads(lh, model, f"{write} after {racer}: {kind} {message}")
    next_write_succeeds(lh, model)


def append_and_expire(table: Table) -> None:
    """PyIceberg appends key 400, then expires every snapshot but the head: the held write's
    base among them."""
    table.append(batch({400: "py"}))
    table.maintenance.expire_snapshots().older_than(dt.datetime.now(dt.UTC)).commit()
    assert len(table.refresh().snapshots()) == 1


def phlo_append_and_expire(lh: phlo.Lakehouse) -> None:
    lh.table("raw.t").append(batch({400: "py"}))
    lh.expire_snapshots(older_than=dt.timedelta(0), keep_last=1)
    assert len(lh.table("raw.t").history()) == 1


@pytest.mark.parametrize("expiry", ["phlo", "PyIceberg"])
@pytest.mark.parametrize(
    "write", ["merge-on-read merge", "copy-on-write merge", "compaction", "append"]
)
def test_a_held_write_whose_base_was_expired_lands_or_conflicts_saying_why(
    tmp_path: Path, write: str, expiry: str
) -> None:
    """Another writer appends (conflicting with none of these writes), then expires every
    snapshot but its own, the held write's base among them. phlo's expiry keeps the new head's
    parent id: the held write sees all that was committed since its base and lands. PyIceberg's
    drops it: the history no longer leads back to the base, the commits in between cannot be
    checked, and the write fails saying so — but a plain append, which has nothing to check
    against them, lands."""
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    lh = seeded(catalog, tmp_path)
    code, change = HELD.get(write, ("lh.table('raw.t').append(batch({77: 'old'}))", None))
    with held(lh, catalog, code, "commit.after-manifests", tmp_path / "fp") as writer:
        if expiry == "phlo":
            phlo_append_and_expire(lh)
        else:
            pyiceberg(lh, append_and_expire)
        kind, message = writer.finish()
    theirs = {**BEFORE, 400: "py"}
    if expiry == "phlo" or write == "append":
        assert (kind, message) == ("ok", ""), (kind, message)
        model = change(theirs) if change else {**theirs, 77: "old"}
    else:
        assert kind == CommitConflictError.__name__, (kind, message)
        assert "raw.t" in message and "expire" in message, message
        model = theirs
    assert_reads(lh, model, f"{write} after {expiry}'s expiry: {kind} {message}")
    next_write_succeeds(lh, model)


@pytest.mark.parametrize("maintenance", ["remove_orphan_files", "expire_snapshots"])
def test_phlo_maintenance_with_default_ages_keeps_a_pyiceberg_write_in_flight(
    tmp_path: Path, maintenance: str
) -> None:
    """PyIceberg's transaction has written its data files and manifests but not committed when
    phlo's maintenance runs with its default ages: they stay, and PyIceberg's commit lands
    whole. (PyIceberg's writes are not fenced like phlo's: a short `older_than` is the
    caller's promise that no write is running, docs/branches.md.)"""
    lh = seeded(f"sqlite:///{tmp_path / 'catalog.db'}", tmp_path)
    with pyiceberg_table(lh) as table:
        with table.transaction() as tx:
            tx.append(batch({400: "py"}))
            if maintenance == "remove_orphan_files":
                assert lh.remove_orphan_files().files == []
            else:
                lh.expire_snapshots(keep_last=1)
    assert_reads(lh, {**BEFORE, 400: "py"}, f"PyIceberg's commit after {maintenance}")
    next_write_succeeds(lh, {**BEFORE, 400: "py"})
