"""A REST catalog client (phlo on `phlo catalog serve`, through a TCP proxy that drops
chosen requests) sends a read again when the network failed it: a table load whose connection
was reset before it reached the server, or whose answer was lost after, still loads. A commit
whose answer was lost is never sent again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from tests.test_catalog_server import served

import phlo
from phlo.errors import CommitStateUnknownError
from s3_requests import LoseReply, Request, counting_proxy


def batch(ids: range) -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64())})


@pytest.fixture
def served_root(lh: phlo.Lakehouse) -> Iterator[tuple[str, Path]]:
    """`phlo catalog serve` on a lakehouse with raw.m holding ids 0..2; its URI and root."""
    lh.create_table("raw.m", {"id": pa.int64()}).append(batch(range(3)))
    with served(lh.root) as uri:
        yield uri, lh.root


def connect(uri: str, root: Path) -> phlo.Lakehouse:
    return phlo.Lakehouse.connect(catalog=uri, warehouse=f"file://{(root / 'warehouse').resolve()}")


def first(method: str, failure: type[BaseException]) -> Callable[[Request], None]:
    """A proxy hook failing the first `method` request for raw.m with `failure`."""
    failed: list[Request] = []

    def before(request: Request) -> None:
        if request.method == method and request.path.endswith("/tables/m") and not failed:
            failed.append(request)
            raise failure

    return before


@pytest.mark.parametrize("failure", [ConnectionResetError, LoseReply])
def test_a_load_the_network_failed_is_sent_again(served_root, failure):
    uri, root = served_root
    with counting_proxy(uri) as (proxied, requests):
        lh = connect(proxied, root)
        requests.before = first("GET", failure)
        table = lh.table("raw.m")
        loads = [r for r in requests.seen if r.method == "GET" and r.path.endswith("/tables/m")]
        assert len(loads) == 2, "the failed send and the one that loaded"
        assert sorted(table.scan().to_arrow()["id"].to_pylist()) == [0, 1, 2]


def test_a_commit_whose_answer_was_lost_is_not_sent_again(served_root):
    uri, root = served_root
    with counting_proxy(uri) as (proxied, requests):
        table = connect(proxied, root).table("raw.m")
        requests.before = first("POST", LoseReply)
        with pytest.raises(CommitStateUnknownError):
            table.append(batch(range(3, 4)))
        commits = [r for r in requests.seen if r.method == "POST" and r.path.endswith("/tables/m")]
    assert len(commits) == 1
    # The server applied it; a new load sees the row.
    assert sorted(connect(uri, root).table("raw.m").scan().to_arrow()["id"].to_pylist()) == [
        0,
        1,
        2,
        3,
    ]
