"""Delete files as other Iceberg writers leave them, committed through PyIceberg's own
transaction API: PyIceberg writes no delete files, so these are Parquet files written by
pyarrow as the Iceberg spec lays them out (position deletes: `file_path`, `pos`; equality
deletes: the compared columns, with their field ids) and listed in a delete manifest that
PyIceberg's manifest writer makes, in a snapshot its snapshot producer commits. Spark, Flink
and iceberg-rust write such files; the shapes here are the ones the spec allows and phlo's
own writers do not make (a delete file covering several data files, equality deletes, deletes
written in an older partition spec)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.io.pyarrow import parquet_file_to_data_file
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestWriterV2,
)
from pyiceberg.table import Table as IcebergTable
from pyiceberg.table.snapshots import Operation
from pyiceberg.table.update.snapshot import _FastAppendFiles
from pyiceberg.typedef import Record

FILE_PATH_ID, POS_ID = 2147483546, 2147483545


class _DeleteManifestWriter(ManifestWriterV2):
    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


class _AddDeletes(_FastAppendFiles):
    """A snapshot keeping every manifest of its parent and adding one delete manifest."""

    def __init__(self, table: IcebergTable, tx: Any, files: list[DataFile], spec_id: int) -> None:
        super().__init__(operation=Operation.DELETE, transaction=tx, io=table.io)
        self._deletes, self._spec_id = files, spec_id

    def _manifests(self) -> list[ManifestFile]:
        writer = _DeleteManifestWriter(
            spec=self.spec(self._spec_id),
            schema=self.schema(),
            output_file=self.new_manifest_output(),
            snapshot_id=self._snapshot_id,
            avro_compression="deflate",
        )
        with writer:
            for delete in self._deletes:
                writer.add_entry(
                    ManifestEntry.from_args(
                        status=ManifestEntryStatus.ADDED,
                        snapshot_id=self._snapshot_id,
                        data_file=delete,
                    )
                )
        return [*super()._manifests(), writer.to_manifest_file()]


def commit_deletes(
    table: IcebergTable,
    files: list[DataFile],
    spec_id: int | None = None,
    data: Sequence[str] = (),
) -> None:
    """Commits `files` (delete files of partition spec `spec_id`, the table's default when
    None) as one snapshot of `table`'s main branch, with the Parquet files `data` (written
    with the table's field ids) added by the same snapshot, as upserting writers do."""
    spec = table.spec().spec_id if spec_id is None else spec_id
    with table.transaction() as tx:
        producer = _AddDeletes(table, tx, files, spec)
        for path in data:
            producer.append_data_file(parquet_file_to_data_file(table.io, table.metadata, path))
        producer.commit()


def _local(path: str) -> str:
    return path.removeprefix("file://")


def _delete_file(
    table: IcebergTable,
    data: pa.Table,
    content: DataFileContent,
    partition: Sequence[Any],
    **fields: Any,
) -> DataFile:
    path = f"{table.location()}/data/{uuid.uuid4()}-outside-deletes.parquet"
    Path(_local(path)).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, _local(path))
    return DataFile.from_args(
        content=content,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=Record(*partition),
        record_count=data.num_rows,
        file_size_in_bytes=Path(_local(path)).stat().st_size,
        **fields,
    )


def _field(name: str, type: pa.DataType, id: int) -> pa.Field:
    return pa.field(name, type, nullable=False, metadata={"PARQUET:field_id": str(id)})


def position_deletes(
    table: IcebergTable,
    deleted: Sequence[tuple[str, int]],
    partition: Sequence[Any] = (),
    referenced: bool = False,
    field_ids: bool = True,
) -> DataFile:
    """A position delete file deleting `deleted` (data file path, row position), sorted as
    the spec requires; `referenced` names the one data file it covers (`referenced_data_file`);
    without `field_ids` its columns carry only the spec's names (as some writers leave them)."""
    rows = sorted(deleted)
    schema = pa.schema(
        [_field("file_path", pa.string(), FILE_PATH_ID), _field("pos", pa.int64(), POS_ID)]
    )
    if not field_ids:
        schema = pa.schema([f.remove_metadata() for f in schema])
    data = pa.table({"file_path": [p for p, _ in rows], "pos": [n for _, n in rows]}, schema=schema)
    paths = {p for p, _ in rows}
    extra = {"referenced_data_file": next(iter(paths))} if referenced and len(paths) == 1 else {}
    return _delete_file(table, data, DataFileContent.POSITION_DELETES, partition, **extra)


def equality_deletes(
    table: IcebergTable,
    columns: dict[str, list[Any]],
    partition: Sequence[Any] = (),
    field_ids: bool = True,
) -> DataFile:
    """An equality delete file deleting the rows equal to one of `columns`' rows on those
    columns (named as in the table's current schema; `s.a` is field `a` of struct `s`);
    without `field_ids` its top-level columns carry only their names."""
    schema = table.schema()
    arrow = schema.as_arrow()
    fields, ids, values = [], [], {}

    def field_id(name: str) -> dict[str, str]:
        return {"PARQUET:field_id": str(schema.find_field(name).field_id)}

    for name, column in columns.items():
        top, _, leaf = name.partition(".")
        type = arrow.field(top).type
        if leaf:  # A struct holding only the compared field.
            type = pa.struct([pa.field(leaf, type.field(leaf).type, metadata=field_id(name))])
            column = [{leaf: v} for v in column]
        fields.append(pa.field(top, type, metadata=field_id(top)))
        ids.append(schema.find_field(name).field_id)
        values[top] = column
    if not field_ids:
        fields = [f.remove_metadata() for f in fields]
    data = pa.table(values, schema=pa.schema(fields))
    return _delete_file(table, data, DataFileContent.EQUALITY_DELETES, partition, equality_ids=ids)


def data_files(table: IcebergTable) -> list[tuple[str, int]]:
    """The live data files of the current snapshot, with their spec ids, in manifest order."""
    snapshot = table.current_snapshot()
    assert snapshot is not None
    return [
        (entry.data_file.file_path, manifest.partition_spec_id)
        for manifest in snapshot.manifests(table.io)
        if manifest.content == ManifestContent.DATA
        for entry in manifest.fetch_manifest_entry(table.io)
    ]


def rows_in_file(path: str) -> list[dict[str, Any]]:
    """The rows of a data file in file order (position i is row i)."""
    return pq.read_table(_local(path)).to_pylist()


def data_file(table: IcebergTable, rows: pa.Table) -> str:
    """A Parquet data file of `rows` in the table's directory, with the table's field ids."""
    path = f"{table.location()}/data/{uuid.uuid4()}-outside.parquet"
    pq.write_table(rows.cast(table.schema().as_arrow()), _local(path))
    return path
