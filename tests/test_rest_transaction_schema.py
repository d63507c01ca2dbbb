"""Another engine changes a table's schema between a REST transaction's writes and its commit:
PyIceberg's RestCatalog on the same server (`phlo catalog serve`, and SeaweedFS's own Iceberg
REST catalog) renames or adds a column while `lh.transaction()` holds staged snapshots of two
tables. The tables' heads do not move, so only the schema tells: phlo's commit asserts the
schema its snapshots were planned under, and on the server's refusal re-checks them against
the new one. A schema the transaction's files still fit lands them, each snapshot naming the
table's current schema; a required column the files lack refuses the whole transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.rest import RestCatalog
from pyiceberg.types import StringType

import phlo
from phlo.catalog_server import CatalogServer
from phlo.errors import CommitConflictError
from seaweedfs_server import ACCESS_KEY, SECRET_KEY, free_port, running_server


@dataclass
class Served:
    """phlo's client and PyIceberg's of one REST server, and a namespace of the test's own."""

    lh: phlo.Lakehouse
    other: RestCatalog
    namespace: str


@pytest.fixture(params=["phlo catalog serve", "seaweedfs"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    namespace = f"ns{uuid.uuid4().hex[:8]}"
    if request.param == "phlo catalog serve":
        root = phlo.Lakehouse.open(tmp_path / "served")
        with CatalogServer(root, port=0) as server:
            lh = phlo.Lakehouse.connect(server.uri, root.warehouse)
            lh.create_namespace(namespace)
            yield Served(lh, RestCatalog("served", uri=server.uri), namespace)
        return
    port = free_port()
    with running_server(flags=[f"-s3.port.iceberg={port}", "-tableBucket=lake"]) as s3:
        uri = f"http://127.0.0.1:{port}"
        properties = {**s3.properties(), "credential": f"{ACCESS_KEY}:{SECRET_KEY}"}
        lh = phlo.Lakehouse.connect(uri, "s3://lake", properties)
        lh.create_namespace(namespace)
        yield Served(lh, RestCatalog("seaweedfs", uri=uri, **properties), namespace)


def batch(ids: range, v: str, column: str = "v") -> pa.Table:
    return pa.table({"id": pa.array(ids, pa.int64()), column: [v] * len(ids)})


def by_id(table: pa.Table) -> dict[int, tuple]:
    return {row[0]: row[1:] for row in zip(*table.to_pydict().values(), strict=True)}


def test_a_schema_changed_between_writes_and_commit_is_asserted_and_re_checked(
    served: Served,
) -> None:
    lh, other = served.lh, served.other
    m, n = f"{served.namespace}.m", f"{served.namespace}.n"
    for name in (m, n):
        lh.create_table(name, {"id": pa.int64(), "v": pa.string()}).append(batch(range(3), "a"))

    with lh.transaction() as tx:
        tx.table(m).merge(batch(range(2, 5), "tx"), "id")
        tx.table(n).append(batch(range(10, 12), "tx"))
        with other.load_table(m).update_schema() as update:
            update.rename_column("v", "label")
        with other.load_table(n).update_schema() as update:
            update.add_column("w", StringType())
    assert tx.result is not None and tx.result.fast_forwarded == [m, n]
    for name in (m, n):
        table = other.load_table(name)
        snapshot = table.current_snapshot()
        assert snapshot is not None and snapshot.schema_id == table.metadata.current_schema_id
    expected_m = {0: ("a",), 1: ("a",), 2: ("tx",), 3: ("tx",), 4: ("tx",)}
    expected_n = {
        0: ("a", None),
        1: ("a", None),
        2: ("a", None),
        10: ("tx", None),
        11: ("tx", None),
    }
    for reader in (
        lambda name: lh.table(name).to_arrow(),
        lambda name: other.load_table(name).scan().to_arrow(),
    ):
        assert by_id(reader(m)) == expected_m
        assert by_id(reader(n)) == expected_n

    # A required column the transaction's files of n lack: nothing lands, on n or on m.
    heads = {name: other.load_table(name).current_snapshot() for name in (m, n)}
    with pytest.raises(CommitConflictError, match=rf"{n}.*required column x"):
        with lh.transaction() as tx:
            tx.table(m).append(batch(range(20, 22), "lost", "label"))
            tx.table(n).append(batch(range(20, 22), "lost"))
            with other.load_table(n).update_schema(allow_incompatible_changes=True) as update:
                update.add_column("x", StringType(), required=True)
    assert {name: other.load_table(name).current_snapshot() for name in (m, n)} == heads
    assert by_id(lh.table(m).to_arrow()) == expected_m
