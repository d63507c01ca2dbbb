"""Compaction, merges and deletes racing each other across processes and engines. A phlo write
in a child process is held after it wrote its files and manifests (`NAME:pause` failpoint);
meanwhile another writer — phlo, PyIceberg, or DuckDB through `phlo catalog serve` — deletes,
updates, appends or compacts the same rows and commits; then the held write resumes. A
plain-Python model is the oracle: the table is the racer's change followed by the held write's
when the held write lands, or the racer's alone when it fails (only with
`CommitConflictError`) — never a deleted row brought back, an updated row twice, or a row lost."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from pyiceberg.expressions import EqualTo, LessThan, Or
from tests.outside_support import (
    BEFORE,
    HELD,
    Model,
    assert_reads,
    batch,
    duckdb,
    held,
    next_write_succeeds,
    pyiceberg,
    seeded,
)

import phlo
from phlo.catalog_server import CatalogServer

THEIRS = {5: "X", 15: "X", 200: "X"}


def deleted(m: Model) -> Model:
    """What every racing delete removes: keys below 3, and 5."""
    return {k: v for k, v in m.items() if k >= 3 and k != 5}


def expiring(lh: phlo.Lakehouse, write: Callable[[], object]) -> None:
    """Runs `write`, then expires every snapshot but the head (the held write's base too)."""
    write()
    assert lh.expire_snapshots(older_than=dt.timedelta(0)).snapshots_expired >= 3
    assert len(lh.table("raw.t").history()) == 1


# The racing writes, run in this process while the held one waits: (the write, its model).
RACERS: dict[str, tuple[Callable[[phlo.Lakehouse], object], Callable[[Model], Model]]] = {
    "phlo merge-on-read delete": (
        lambda lh: lh.table("raw.t").delete(("id", "in", [0, 1, 2, 5]), write_mode="merge-on-read"),
        deleted,
    ),
    "phlo merge-on-read merge": (
        lambda lh: lh.table("raw.t").merge(batch(THEIRS), "id", write_mode="merge-on-read"),
        lambda m: {**m, **THEIRS},
    ),
    "phlo copy-on-write merge": (
        lambda lh: lh.table("raw.t").merge(batch(THEIRS), "id", write_mode="copy-on-write"),
        lambda m: {**m, **THEIRS},
    ),
    "phlo compaction": (lambda lh: lh.table("raw.t").compact(), lambda m: m),
    "PyIceberg delete": (
        lambda lh: pyiceberg(lh, lambda t: t.delete(Or(LessThan("id", 3), EqualTo("id", 5)))),
        deleted,
    ),
    "PyIceberg append": (
        lambda lh: pyiceberg(lh, lambda t: t.append(batch({300: "p"}))),
        lambda m: {**m, 300: "p"},
    ),
    # The held write's base snapshot expires: conflicts must still be found.
    "phlo merge-on-read merge, expiring the base": (
        lambda lh: expiring(
            lh, lambda: lh.table("raw.t").merge(batch(THEIRS), "id", write_mode="merge-on-read")
        ),
        lambda m: {**m, **THEIRS},
    ),
    "phlo compaction, expiring the base": (
        lambda lh: expiring(lh, lh.table("raw.t").compact),
        lambda m: m,
    ),
    "DuckDB delete": (
        lambda lh: duckdb(lh, "DELETE FROM lake.raw.t WHERE id < 3 OR id = 5"),
        deleted,
    ),
    "DuckDB update": (
        lambda lh: duckdb(lh, "UPDATE lake.raw.t SET v = 'X' WHERE id IN (5, 15)"),
        lambda m: {**m, **{k: "X" for k in (5, 15) if k in m}},
    ),
}


@pytest.fixture
def catalog(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture
def lh(catalog: str, tmp_path: Path) -> phlo.Lakehouse:
    return seeded(catalog, tmp_path)


def check_outcome(
    lh: phlo.Lakehouse,
    theirs: Model,
    held_change: Callable[[Model], Model],
    outcome: tuple[str, str],
    label: str,
) -> None:
    """The held write landed on top of the racer's, or failed with a conflict naming the table
    and changed nothing; either way the table takes the next write."""
    kind, message = outcome
    if kind == "ok":
        model = held_change(theirs)
    else:
        assert kind == "CommitConflictError", (label, kind, message)
        assert "raw.t" in message, message
        model = theirs
    assert_reads(lh, model, f"{label}: {kind} {message}")
    next_write_succeeds(lh, model)


@pytest.mark.parametrize("racer", list(RACERS))
@pytest.mark.parametrize("write", list(HELD))
def test_a_held_write_and_a_racing_writer_lose_and_resurrect_nothing(
    lh: phlo.Lakehouse, catalog: str, tmp_path: Path, write: str, racer: str
) -> None:
    code, held_change = HELD[write]
    race, race_change = RACERS[racer]
    with held(lh, catalog, code, "commit.after-manifests", tmp_path / "fp") as writer:
        race(lh)
        theirs = race_change(BEFORE)
        assert_reads(lh, theirs, f"{racer} committed")
        outcome = writer.finish()
    check_outcome(lh, theirs, held_change, outcome, f"{write} after {racer}")


@pytest.mark.parametrize("racer", ["DuckDB delete", "DuckDB update", "phlo merge-on-read merge"])
@pytest.mark.parametrize("write", ["compaction", "merge-on-read merge", "merge-on-read delete"])
def test_through_phlo_catalog_serve_a_held_write_and_a_racer_lose_and_resurrect_nothing(
    lh: phlo.Lakehouse, tmp_path: Path, write: str, racer: str
) -> None:
    """The same races with every writer a client of one `phlo catalog serve`: the held phlo
    write commits through the server, which checks its requirements."""
    code, held_change = HELD[write]
    race, race_change = RACERS[racer]
    with CatalogServer(lh, port=0) as server:
        client = phlo.Lakehouse.connect(catalog=server.uri, warehouse=lh.warehouse)
        with held(client, server.uri, code, "commit.after-manifests", tmp_path / "fp") as writer:
            race(client)
            theirs = race_change(BEFORE)
            assert_reads(lh, theirs, f"{racer} committed")
            outcome = writer.finish()
    check_outcome(lh, theirs, held_change, outcome, f"{write} after {racer}")
