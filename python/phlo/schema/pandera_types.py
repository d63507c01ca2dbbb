"""Reading Pandera schemas: which backend a schema is for, and each column's Arrow type.

Pandera models come in three flavours phlo accepts: pandas-typed (``pandera.pandas``),
polars-typed (``pandera.polars``) and pyarrow-typed (pandas models annotated with
``pd.ArrowDtype``). A dtype's Arrow type is what its own library produces for an empty column
of it, so every type the library knows maps without a table of names.
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa

from phlo.errors import SchemaError

Backend = Literal["pandas", "polars"]


def dataframe_schema(schema: Any) -> tuple[Any, Backend]:
    """The Pandera ``DataFrameSchema`` of a model class or schema object, and its backend."""
    to_schema = getattr(schema, "to_schema", None)
    resolved = to_schema() if isinstance(schema, type) and callable(to_schema) else schema
    columns = getattr(resolved, "columns", None)
    if not isinstance(columns, dict):
        raise SchemaError(
            f"{schema!r} is not a Pandera schema; pass a DataFrameModel class or a "
            "DataFrameSchema (pandera.pandas or pandera.polars)"
        )
    backend: Backend = "polars" if ".polars" in type(resolved).__module__ else "pandas"
    return resolved, backend


def arrow_type(dtype: Any, backend: Backend, column: str) -> pa.DataType | None:
    """The Arrow type of a Pandera dtype (``None`` when the column declares none)."""
    if dtype is None:
        return None
    kind = type(dtype).__name__
    if kind == "Decimal" and getattr(dtype, "precision", None) is not None:
        return pa.decimal128(int(dtype.precision), int(dtype.scale or 0))
    if kind == "Date":
        return pa.date32()
    try:
        if backend == "polars":
            import polars as pl

            arrow = pl.Series([], dtype=dtype.type).to_arrow().type
        else:
            import pandas as pd

            arrow = pa.array(pd.Series([], dtype=dtype.type)).type
    except Exception as exc:  # the library cannot build such a column
        raise SchemaError(
            f"column {column!r}: Pandera type {dtype} has no Arrow equivalent ({exc})",
            column=column,
        ) from exc
    if pa.types.is_null(arrow):
        raise SchemaError(
            f"column {column!r}: Pandera type {dtype} (a Python object column) has no Iceberg "
            "equivalent; declare str, int, float, bool, datetime, date, Decimal or a "
            "pd.ArrowDtype / polars type",
            column=column,
        )
    return normalize(arrow)


def normalize(arrow: pa.DataType) -> pa.DataType:
    """One Arrow type per Iceberg type: plain (not large/view) strings, binaries and lists,
    microsecond timestamps and times (Iceberg v2 has no nanoseconds)."""
    if pa.types.is_large_string(arrow) or pa.types.is_string_view(arrow):
        return pa.string()
    if pa.types.is_large_binary(arrow) or pa.types.is_binary_view(arrow):
        return pa.binary()
    if pa.types.is_timestamp(arrow) and arrow.unit == "ns":
        return pa.timestamp("us", tz=arrow.tz)
    if pa.types.is_time64(arrow) and arrow.unit == "ns":
        return pa.time64("us")
    if pa.types.is_large_list(arrow) or pa.types.is_list(arrow) or pa.types.is_list_view(arrow):
        item = arrow.value_field
        return pa.list_(item.with_type(normalize(item.type)))
    if pa.types.is_struct(arrow):
        return pa.struct([f.with_type(normalize(f.type)) for f in arrow])
    if pa.types.is_map(arrow):
        return pa.map_(normalize(arrow.key_type), normalize(arrow.item_type))
    return arrow
