"""A binary column partitioned by `truncate`: legal Iceberg, written by PyIceberg, but phlo's
Iceberg library cannot compute it on the Arrow type phlo reads binary columns as. phlo reads
such a table, compacts it and deletes from it by position, and refuses every write that must
compute a partition with a typed error naming the field, changing nothing; it refuses to
create such a table in the first place."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.transforms import TruncateTransform
from pyiceberg.types import BinaryType, LongType
from tests.outside_support import optional, sql_catalog

import phlo

SCHEMA = Schema(optional(1, "id", LongType()), optional(2, "b", BinaryType()))
ROWS = [{"id": i, "b": bytes([i % 3, i, 9])} for i in range(12)]


def pyiceberg_table(lh: phlo.Lakehouse) -> None:
    spec = PartitionSpec(PartitionField(2, 1000, TruncateTransform(1), "b_trunc"))
    table = sql_catalog(lh).create_table("raw.t", schema=SCHEMA, partition_spec=spec)
    # (PyIceberg, with the same library, truncates `binary` Arrow arrays but not `large_binary`.)
    arrow = pa.schema([("id", pa.int64()), ("b", pa.binary())])
    for half in (ROWS[:6], ROWS[6:]):  # two files a partition: compaction has work
        table.append(pa.Table.from_pylist(half, schema=arrow))


WRITES = {
    "append": lambda t: t.append(pa.table({"id": [99], "b": [b"\x01z"]})),
    "merge": lambda t: t.merge(pa.table({"id": [1, 99], "b": [b"\x01z", b"\x02"]}), "id"),
    "copy-on-write delete": lambda t: t.delete(("id", "<", 3), write_mode="copy-on-write"),
}


@pytest.mark.parametrize("write", WRITES)
def test_writes_that_compute_a_truncated_binary_partition_are_refused_naming_it(lh, write):
    pyiceberg_table(lh)
    before = sql_catalog(lh).load_table("raw.t").metadata_location
    table = lh.table("raw.t")
    assert sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"]) == ROWS

    with pytest.raises(phlo.errors.SchemaError) as refused:
        WRITES[write](table)
    message = str(refused.value)
    assert "b_trunc" in message and "truncate" in message and "column b" in message, message
    assert sql_catalog(lh).load_table("raw.t").metadata_location == before
    assert sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"]) == ROWS


def test_writes_that_compute_no_partition_land(lh):
    """A merge-on-read delete writes position deletes in its files' partitions, and compaction
    keeps each file's partition."""
    pyiceberg_table(lh)
    table = lh.table("raw.t")
    assert table.delete(("id", "<", 3), write_mode="merge-on-read").rows_deleted == 3
    table.compact()
    files = sql_catalog(lh).load_table("raw.t").inspect.files()
    assert len(files) == 3  # one a partition, each with its own value
    left = sql_catalog(lh).load_table("raw.t").scan().to_arrow().to_pylist()
    assert sorted(left, key=lambda r: r["id"]) == ROWS[3:]


def test_phlo_refuses_to_create_a_table_it_could_not_write(lh):
    with pytest.raises(phlo.errors.InputError, match="truncate"):
        lh.create_table(
            "raw.u", {"id": pa.int64(), "b": pa.binary()}, partition_by=[("b", "truncate[2]")]
        )
