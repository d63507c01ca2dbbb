"""Turning what users pass as data into something the engine reads through the Arrow PyCapsule
interface, without copying when the object already speaks Arrow."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from phlo.errors import EmptyInputError, InputError

_HOW_TO_FIX = (
    "pass a pyarrow Table/RecordBatch/RecordBatchReader, a polars or pandas DataFrame, a DuckDB "
    "relation, any object exporting __arrow_c_stream__, or a list of dicts"
)


def as_arrow(data: Any) -> Any:
    """Returns an object exporting `__arrow_c_stream__` or `__arrow_c_array__` for `data`."""
    if hasattr(data, "__arrow_c_stream__") or hasattr(data, "__arrow_c_array__"):
        return data
    module = type(data).__module__.split(".")[0]
    if module == "pandas" and hasattr(data, "columns"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if module == "duckdb" and hasattr(data, "to_arrow_table"):
        return data.to_arrow_table()
    if isinstance(data, Iterable) and not isinstance(data, str | bytes | Mapping):
        rows = list(data)
        if rows and all(isinstance(row, Mapping) for row in rows):
            return pa.Table.from_pylist(rows)
        if not rows:
            raise EmptyInputError(
                f"no rows to write (got an empty {type(data).__name__}); {_HOW_TO_FIX}"
            )
    raise InputError(f"cannot read {type(data).__name__} as Arrow data; {_HOW_TO_FIX}")


def as_arrow_schema(schema: Any) -> pa.Schema:
    """Accepts a pyarrow Schema, anything exporting `__arrow_c_schema__`, or a mapping of
    column name to pyarrow type."""
    if isinstance(schema, pa.Schema):
        return schema
    if isinstance(schema, Mapping):
        try:
            return pa.schema(list(schema.items()))
        except (TypeError, ValueError) as exc:
            raise InputError(f"invalid schema mapping: {exc}") from exc
    if hasattr(schema, "__arrow_c_schema__"):
        return pa.schema(schema)
    raise InputError(
        f"cannot use {type(schema).__name__} as a table schema; pass a pyarrow.Schema "
        "or a {column: pyarrow type} mapping"
    )
