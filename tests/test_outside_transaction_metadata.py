"""A phlo transaction open on a table while PyIceberg commits to it, with
`write.metadata.delete-after-commit.enabled` and a one-entry `metadata-log`: PyIceberg's second
commit deletes the metadata file the transaction started from. Transactions keep no copy of it
(branches and tags do; a copy per table at every transaction start would be left behind), so
the transaction fails, typed, with nothing of it landed and every row PyIceberg committed kept."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog.sql import SqlCatalog

import phlo
from phlo import errors

HOUSEKEEPING = {
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "1",
}


def batch(ids: range) -> pa.Table:
    return pa.table({"id": pa.array(list(ids), pa.int64())})


def fresh(lh: phlo.Lakehouse) -> phlo.Lakehouse:
    """A new connection to `lh` (`lh` keeps the metadata files it read)."""
    return phlo.Lakehouse.connect(catalog=lh.catalog_uri, warehouse=lh.warehouse)


def ids(lh: phlo.Lakehouse, name: str = "raw.t") -> list[int]:
    """`name`'s ids on main, read by a new connection."""
    return sorted(fresh(lh).table(name).scan().to_arrow().column("id").to_pylist())


def pyiceberg_appends(lh: phlo.Lakehouse, starts: range, name: str = "raw.t") -> None:
    """PyIceberg commits to main, each deleting what falls out of its one-entry log."""
    catalog = SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)
    try:
        for start in starts:
            catalog.load_table(name).append(batch(range(start, start + 1)))
    finally:
        catalog.engine.dispose()


def kept_table(lh: phlo.Lakehouse, name: str = "raw.t") -> str:
    """A table with housekeeping on and two rows; returns its current metadata file."""
    table = lh.create_table(name, {"id": pa.int64()})
    table.set_properties(HOUSEKEEPING)
    table.append(batch(range(0, 2)))
    return table.metadata_location


def gone(location: str) -> bool:
    return not Path(location.removeprefix("file://")).exists()


def test_a_transaction_whose_start_pyiceberg_deleted_before_it_read_fails_typed(lh):
    """PyIceberg deletes the file before the transaction first touches the table (opened by a
    connection that never read that file, so no cache of it helps)."""
    start = kept_table(lh)
    with pytest.raises(errors.StorageError), fresh(lh).transaction("main") as tx:
        pyiceberg_appends(lh, range(10, 13))
        assert gone(start)
        table = tx.table("raw.t")
        table.scan().to_arrow()
        table.append(batch(range(100, 102)))
    assert ids(lh) == [0, 1, 10, 11, 12]
    assert not [b for b in lh.branches() if b.startswith("tx/")]


def test_a_transaction_whose_start_pyiceberg_deleted_after_its_write_fails_typed(lh):
    """PyIceberg deletes the file between the transaction's write and its commit: the other
    table's write does not land either."""
    start = kept_table(lh)
    kept_table(lh, "raw.u")
    with pytest.raises(errors.StorageError), lh.transaction("main") as tx:
        tx.table("raw.t").append(batch(range(100, 102)))
        tx.table("raw.u").append(batch(range(200, 201)))
        pyiceberg_appends(lh, range(10, 13))
        assert gone(start)
        tx.table("raw.t").append(batch(range(102, 103)))
    assert ids(lh) == [0, 1, 10, 11, 12]
    assert ids(lh, "raw.u") == [0, 1]
