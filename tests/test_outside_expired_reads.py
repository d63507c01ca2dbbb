"""A reader holding an old snapshot while maintenance deletes that snapshot's files: a phlo scan
streaming batches, a scan of `snapshot_id=` planned before the expiry, and a PyIceberg read.
Each ends with every row of the snapshot or a typed error (`phlo.errors.StorageError`, naming
the file); never a panic, a hang or a silently short result."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

import phlo
from phlo.errors import PhloError, StorageError

FILES, ROWS_PER_FILE = 6, 1000


def table_of_many_files(lh: phlo.Lakehouse) -> tuple[phlo.Table, int]:
    """A table whose old snapshot has `FILES` files; compaction then replaces them."""
    table = lh.create_table("raw.t", {"id": pa.int64(), "v": pa.string()})
    for f in range(FILES):
        ids = range(f * ROWS_PER_FILE, (f + 1) * ROWS_PER_FILE)
        table.append(pa.table({"id": list(ids), "v": [f"v{i}" for i in ids]}))
    old = table.current_snapshot_id
    table.compact()
    return table, old


def expire_everything(lh: phlo.Lakehouse) -> None:
    lh.expire_snapshots(older_than=dt.timedelta(0), keep_last=1)
    lh.remove_orphan_files(older_than=dt.timedelta(0))


@pytest.mark.parametrize("read_first", [0, 1], ids=["planned", "streaming"])
def test_a_scan_whose_files_are_expired_gives_all_rows_or_a_typed_error(lh, read_first):
    table, old = table_of_many_files(lh)
    scan = table.scan(snapshot_id=old, batch_size=ROWS_PER_FILE // 2)
    batches = scan.to_batches()
    got = [next(batches) for _ in range(read_first)]
    expire_everything(lh)
    try:
        got.extend(batches)
    except StorageError as e:
        assert ".parquet" in str(e), e
        return
    except PhloError as e:  # pragma: no cover - the failure this test looks for
        pytest.fail(f"untyped failure reading expired files: {type(e).__name__}: {e}")
    rows = sum(b.num_rows for b in got)
    assert rows == FILES * ROWS_PER_FILE, "a short result without an error"


def test_a_scan_of_an_expired_snapshot_id_is_a_typed_error(lh):
    table, old = table_of_many_files(lh)
    expire_everything(lh)
    with pytest.raises(PhloError) as info:
        table.scan(snapshot_id=old).to_arrow()
    assert str(old) in str(info.value)
    # The current snapshot still reads whole.
    assert table.scan().to_arrow().num_rows == FILES * ROWS_PER_FILE
