"""Publishing marts to PostgreSQL from outside, under races and kills: two publishes of one table
(or of two tables into one new schema) at once, and a publishing process killed mid-COPY. The
BI-facing table is always exactly one published snapshot — never a mix of two, never partial —
and the bookkeeping names the snapshot the table holds.

The interleavings are forced, not timed: one publish is held at a chosen step (a wrapper
around one of phlo's own functions, waiting on an event) while the other runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

import phlo
from phlo.publishing import postgres, publish_marts_to_postgres

TIMEOUT = 120


def pg_rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as con:
        return sorted(con.execute(query).fetchall())


def versions(table: phlo.Table, snapshot_id: int) -> list[tuple[Any, ...]]:
    data = table.scan(snapshot_id=snapshot_id).to_arrow()
    return sorted(tuple(r.values()) for r in data.select(["id", "v"]).to_pylist())


@contextmanager
def held(module: Any, name: str) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Makes the first call of `module.name` wait: yields ``(reached, go)``."""
    original: Callable[..., Any] = getattr(module, name)
    reached, go = threading.Event(), threading.Event()
    first = threading.Lock()

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if first.acquire(blocking=False):
            reached.set()
            assert go.wait(TIMEOUT)
        return original(*args, **kwargs)

    setattr(module, name, wrapper)
    try:
        yield reached, go
    finally:
        go.set()
        setattr(module, name, original)


class Publisher(threading.Thread):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.kwargs, self.error, self.result = kwargs, None, None

    def run(self) -> None:
        try:
            self.result = publish_marts_to_postgres(None, **self.kwargs)
        except BaseException as e:  # judged by the test
            self.error = e


def race(url: str, step: str, held_args: dict[str, Any], other_args: dict[str, Any]) -> None:
    """Publishes `held_args`, holding it at `step` (a function of `phlo.publishing.postgres`),
    while `other_args` publishes until it is done or waits for the held one; then lets both
    finish. Both must succeed."""
    with held(postgres, step) as (reached, go):
        first = Publisher(**held_args)
        first.start()
        assert reached.wait(TIMEOUT)
        second = Publisher(**other_args)
        second.start()
        wait_until_done_or_blocked(url, second)
        go.set()
        first.join(TIMEOUT)
        second.join(TIMEOUT)
    assert first.error is None and second.error is None, (first.error, second.error)


def wait_until_done_or_blocked(url: str, thread: threading.Thread) -> None:
    """Until `thread` finished or a backend of the database waits for a lock (the publish in
    it queued behind the held one)."""
    with psycopg.connect(url, autocommit=True) as con:
        for _ in range(TIMEOUT * 100):
            if not thread.is_alive():
                return
            waiting = con.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            ).fetchone()
            if waiting and waiting[0]:
                return
            thread.join(0.01)
    raise AssertionError("the second publish neither finished nor waited")


@pytest.fixture
def mart(lh: phlo.Lakehouse) -> phlo.Table:
    lh.create_namespace("marts")
    return lh.create_table("marts.mrt", {"id": pa.int64(), "v": pa.int64()})


def upsert(table: phlo.Table, rows: dict[int, int]) -> int:
    table.merge(pa.table({"id": list(rows), "v": list(rows.values())}), "id")
    snapshot = table.current_snapshot_id
    assert snapshot is not None
    return snapshot


def test_two_incremental_publishes_at_once_leave_one_snapshot(lh, mart, postgres_url):
    """Both start from the same last-published snapshot S0. The older one (S1) computes its
    changes, is held, the newer one (S2) runs, then the older one goes on: the table must be
    S1 or S2, not S2 with S1's changes applied over it."""
    s0 = upsert(mart, {1: 0, 2: 0})
    args = {
        "tables_to_publish": {"t": "marts.mrt"},
        "lakehouse": lh,
        "connection": postgres_url,
        "primary_keys": {"t": ["id"]},
        "incremental": True,
    }
    publish_marts_to_postgres(None, **args)
    s1 = upsert(mart, {1: 1})  # key 1 changes in S1 and again in S2; key 2 only in S2
    lh.create_tag("s1")
    s2 = upsert(mart, {1: 2, 2: 2})
    # The older publish computed its changes (from S0) and is held before applying them.
    race(postgres_url, "upsert_rows", {**args, "ref": "s1"}, args)
    table = pg_rows(postgres_url, "SELECT id, v FROM marts.t")
    (recorded,) = pg_rows(
        postgres_url, "SELECT snapshot_id FROM marts._phlo_publications WHERE table_name = 't'"
    )
    assert table in (versions(mart, s1), versions(mart, s2)), table
    assert table == versions(mart, recorded[0]), "the bookkeeping names another snapshot"
    assert versions(mart, s0) == [(1, 0), (2, 0)]


def test_two_first_publishes_of_one_table_at_once_both_succeed(lh, mart, postgres_url):
    upsert(mart, {1: 1, 2: 1})
    args = {"tables_to_publish": {"t": "marts.mrt"}, "lakehouse": lh, "connection": postgres_url}
    # The first one's table is renamed into place, not committed.
    race(postgres_url, "record_publish", args, args)
    assert pg_rows(postgres_url, "SELECT id, v FROM marts.t") == [(1, 1), (2, 1)]


def test_two_tables_first_published_into_one_new_schema_at_once(lh, mart, postgres_url):
    """Two publishing assets of one run, each with its own table, same (new) target schema."""
    upsert(mart, {1: 1})
    common = {"lakehouse": lh, "connection": postgres_url}
    race(
        postgres_url,
        "record_publish",
        {"tables_to_publish": {"a": "marts.mrt"}, **common},
        {"tables_to_publish": {"b": "marts.mrt"}, **common},
    )
    assert pg_rows(postgres_url, "SELECT id, v FROM marts.a") == [(1, 1)]
    assert pg_rows(postgres_url, "SELECT id, v FROM marts.b") == [(1, 1)]
    assert [
        r[0] for r in pg_rows(postgres_url, "SELECT table_name FROM marts._phlo_publications")
    ] == ["a", "b"]


# The child publishes with its COPY held: it says "held" when the new table is being loaded,
# then waits to be killed.
CHILD = textwrap.dedent(
    """
    import sys, time
    import phlo
    from phlo.publishing import postgres, publish_marts_to_postgres

    root, url = sys.argv[1], sys.argv[2]
    replace = postgres.replace_table

    def held(cur, schema, name, data, *rest):
        class Reader:
            schema = data.schema
            def __iter__(self):
                yield data.read_next_batch()
                print("held", flush=True)
                time.sleep(3600)
        return replace(cur, schema, name, pyarrow.RecordBatchReader.from_batches(
            data.schema, iter(Reader())), *rest)

    import pyarrow
    postgres.replace_table = held
    publish_marts_to_postgres(None, {"t": "marts.mrt"}, lakehouse=phlo.Lakehouse.open(root),
                              connection=url, primary_keys={"t": ["id"]})
    """
)


def test_a_publish_killed_mid_copy_leaves_the_old_table(lh, mart, postgres_url, tmp_path: Path):
    upsert(mart, {i: 0 for i in range(10)})
    publish_marts_to_postgres(
        None, {"t": "marts.mrt"}, lakehouse=lh, connection=postgres_url, primary_keys={"t": ["id"]}
    )
    old = pg_rows(postgres_url, "SELECT id, v FROM marts.t")
    mart.append(pa.table({"id": list(range(10, 300_000)), "v": [1] * 299_990}))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(lh.root), postgres_url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "held"
    # A reader during the publish sees the old table.
    assert pg_rows(postgres_url, "SELECT id, v FROM marts.t") == old
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert pg_rows(postgres_url, "SELECT id, v FROM marts.t") == old
    leftovers = pg_rows(
        postgres_url, "SELECT relname FROM pg_class WHERE relname LIKE '\\_phlo\\_new\\_%'"
    )
    assert leftovers == []
    # The next publish goes through.
    publish_marts_to_postgres(
        None, {"t": "marts.mrt"}, lakehouse=lh, connection=postgres_url, primary_keys={"t": ["id"]}
    )
    assert len(pg_rows(postgres_url, "SELECT id FROM marts.t")) == 300_000
