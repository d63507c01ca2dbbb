"""Spooling a streamed source to local Arrow files while it is extracted, and reading files
back as one `RecordBatchReader`.

Extraction has to finish inside its time limit and be retryable, so a lazy source (a generator
of dicts, a `RecordBatchReader`) is drained during extraction, batch by batch, into Arrow IPC
files of the attempt's folder; memory holds one batch at a time. The files are read back
memory-mapped (no copy). Batches may disagree on columns (a key missing from some records)
or widen a type (int then float); the reader gives every batch the unified schema. Types that
cannot be unified (an int column holding a string) raise `SchemaError` naming the column and
the row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from phlo.errors import SchemaError

__all__ = ["BATCH_ROWS", "Spool", "batched", "conform", "files_reader", "unify"]

#: Records converted to Arrow at a time.
BATCH_ROWS = 65_536


class Spool:
    """Arrow batches written to IPC files under `folder`, one file per batch.

    `contract` (the definition's schema, as Arrow) gives the types of the columns it names:
    records are converted with Arrow's inference and those columns are then cast (ISO strings
    to timestamps, ints to floats, ...)."""

    def __init__(self, folder: Path, contract: pa.Schema | None = None) -> None:
        self.folder = folder
        self.contract = {f.name: f.type for f in contract} if contract is not None else {}
        self.files: list[Path] = []
        self.rows = 0
        self.schema: pa.Schema | None = None

    def add_records(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Adds a batch of dicts (row numbers in errors count from the first record added)."""
        batch = _records_to_batch(records, self.rows)
        self.add(self._typed(batch))

    def add(self, data: pa.Table | pa.RecordBatch) -> None:
        if data.num_rows == 0:
            return
        self.schema = unify(self.schema, data, first_row=self.rows)
        path = self.folder / f"part-{len(self.files):05d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, data.schema) as writer:
            writer.write(data)
        self.files.append(path)
        self.rows += data.num_rows

    def reader(self) -> pa.RecordBatchReader | None:
        if self.schema is None:
            return None
        return files_reader(self.files, self.schema, _ipc_batches)

    def _typed(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        columns = []
        for field in batch.schema:
            column = batch.column(field.name)
            target = self.contract.get(field.name)
            if target is not None and column.type != target:
                column = _cast(column, target, field.name, self.rows)
            columns.append(column)
        return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def batched(items: Iterable[Any], size: int | None = None) -> Iterator[list[Any]]:
    """Lists of up to `size` (default `BATCH_ROWS`) items, in order."""
    size = size or BATCH_ROWS
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def unify(
    schema: pa.Schema | None, data: pa.Table | pa.RecordBatch, *, first_row: int
) -> pa.Schema:
    """`schema` widened to hold `data` too (new columns appended, nulls and ints promoted);
    `SchemaError` naming the column and the first row of `data` that disagrees."""
    if schema is None:
        return data.schema.remove_metadata()
    try:
        return pa.unify_schemas(
            [schema, data.schema.remove_metadata()], promote_options="permissive"
        )
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    for field in data.schema:
        index = schema.get_field_index(field.name)
        if index < 0:
            continue
        before = schema.field(index)
        try:
            pa.unify_schemas(
                [pa.schema([before]), pa.schema([field])], promote_options="permissive"
            )
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            column = data.column(field.name)
            row = _first_valid(column)
            raise SchemaError(
                f"column {field.name!r} changes type: rows before {first_row} hold "
                f"{before.type}, row {first_row + row} holds {column[row].as_py()!r} "
                f"({field.type}); make the source return one type per column, or declare the "
                "column's type in the schema",
                column=field.name,
            ) from None
    raise SchemaError(f"cannot combine schemas {schema} and {data.schema}")


def files_reader(
    files: Sequence[Path],
    schema: pa.Schema,
    batches_of: Callable[[Path, pa.Schema], Iterator[pa.RecordBatch]],
) -> pa.RecordBatchReader:
    """One reader over the batches of `files` (read lazily, in order), each given `schema`
    (missing columns as nulls, widened types cast). `batches_of(path, schema)` reads one file
    and may project to `schema`'s columns."""

    def batches() -> Iterator[pa.RecordBatch]:
        for path in files:
            for batch in batches_of(path, schema):
                yield conform(batch, schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """`batch` with exactly `schema`'s columns and types."""
    if batch.schema.equals(schema):
        return batch
    columns = []
    for field in schema:
        index = batch.schema.get_field_index(field.name)
        if index < 0:
            columns.append(pa.nulls(batch.num_rows, field.type))
        else:
            column = batch.column(index)
            columns.append(column if column.type == field.type else column.cast(field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _ipc_batches(path: Path, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)


def _records_to_batch(records: Sequence[Mapping[str, Any]], first_row: int) -> pa.RecordBatch:
    for i, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise SchemaError(
                f"row {first_row + i} is a {type(record).__name__}, not a dict; an iterable "
                "source yields dicts (one per row) or Arrow tables/batches"
            )
    try:
        array = pa.array(records)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise _mixed_types(records, first_row, exc) from exc
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not pa.types.is_struct(array.type):  # e.g. every record empty
        return pa.RecordBatch.from_pydict({})
    return pa.RecordBatch.from_struct_array(array)


def _mixed_types(
    records: Sequence[Mapping[str, Any]], first_row: int, cause: Exception
) -> SchemaError:
    """The column and row where a batch's values stop fitting one Arrow type."""
    names = dict.fromkeys(key for record in records for key in record)
    for name in names:
        values = [record.get(name) for record in records]
        try:
            pa.array(values)
            continue
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
        first = next(i for i, v in enumerate(values) if v is not None)
        for i in range(first + 1, len(values)):
            try:
                pa.array(values[first : i + 1])
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                return SchemaError(
                    f"column {name!r} mixes types: row {first_row + first} holds "
                    f"{values[first]!r} ({type(values[first]).__name__}), row {first_row + i} "
                    f"holds {values[i]!r} ({type(values[i]).__name__}); make the source return "
                    "one type per column",
                    column=name,
                )
    return SchemaError(
        f"cannot convert rows {first_row}..{first_row + len(records) - 1} to Arrow: {cause}"
    )


def _cast(column: pa.Array, target: pa.DataType, name: str, first_row: int) -> pa.Array:
    try:
        return pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        row = next((i for i in range(len(column)) if not _casts(column.slice(i, 1), target)), None)
        where = (
            f"row {first_row + row} holds {column[row].as_py()!r}" if row is not None else str(exc)
        )
        raise SchemaError(
            f"column {name!r} cannot be read as {target} (the schema's type): {where}; fix "
            "the source or the schema",
            column=name,
        ) from exc


def _casts(value: pa.Array, target: pa.DataType) -> bool:
    try:
        pc.cast(value, target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return False
    return True


def _first_valid(column: pa.Array | pa.ChunkedArray) -> int:
    valid = pc.is_valid(column)
    index = pc.index(valid, True).as_py()
    return int(index) if index is not None and index >= 0 else 0
