"""Pandera schema → Iceberg schema (as the Arrow schema phlo creates tables from)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from phlo import _native
from phlo.errors import SchemaError
from phlo.schema.pandera_types import arrow_type, dataframe_schema

#: phlo's metadata columns (see `phlo.stage`), with the field ids Iceberg reserves for them.
METADATA_COLUMNS = pa.schema(
    [
        pa.field("_phlo_row_id", pa.string(), nullable=False),
        pa.field("_phlo_ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("_phlo_partition_date", pa.date32()),
        pa.field("_phlo_run_id", pa.string(), nullable=False),
    ]
)


def pandera_to_iceberg(schema: Any, *, metadata_columns: bool = False) -> pa.Schema:
    """The Iceberg schema of a Pandera `DataFrameModel` / `DataFrameSchema`, as an Arrow schema
    whose fields carry their Iceberg field ids (``PARQUET:field_id``) and docs — exactly what
    ``lh.create_table(name, schema=...)`` creates.

    str→string, int→long, int32→int, float→double, float32→float, bool→boolean, tz-aware
    datetime→timestamptz, naive datetime→timestamp, date→date, time→time, bytes→binary,
    Decimal(p, s)→decimal(p, s), list/struct types as declared; ``required = not nullable``;
    docs from each field's ``description``. With `metadata_columns`, phlo's ``_phlo_*``
    columns are added with their reserved ids. A type Iceberg cannot hold raises `SchemaError`
    naming the field."""
    resolved, backend = dataframe_schema(schema)
    fields = []
    for name, column in resolved.columns.items():
        if getattr(column, "regex", False):
            raise SchemaError(
                f"column {name!r} is a name pattern (regex=True); an Iceberg schema needs "
                "concrete column names",
                column=name,
            )
        dtype = arrow_type(column.dtype, backend, name)
        if dtype is None:
            raise SchemaError(
                f"column {name!r} declares no type; give it one (e.g. Series[int])", column=name
            )
        doc = column.description or column.title
        metadata = {"doc": str(doc)} if doc else None
        fields.append(pa.field(name, dtype, nullable=bool(column.nullable), metadata=metadata))
    if metadata_columns:
        fields.extend(METADATA_COLUMNS)
    return pa.schema(_native.iceberg_schema(pa.schema(fields)))


def table_schema(schema: Any, *, metadata_columns: bool = False) -> pa.Schema:
    """The Arrow schema a table is created from: a Pandera `DataFrameModel` /
    `DataFrameSchema` (`pandera_to_iceberg`), a pyarrow Schema, or a ``{column: pyarrow type}``
    mapping. With `metadata_columns`, phlo's ``_phlo_*`` columns are added (unless present)."""
    if is_pandera_schema(schema):
        return pandera_to_iceberg(schema, metadata_columns=metadata_columns)
    from phlo._arrow import as_arrow_schema

    arrow = as_arrow_schema(schema)
    if metadata_columns:
        arrow = pa.schema([*arrow, *(f for f in METADATA_COLUMNS if f.name not in arrow.names)])
    return arrow


def is_pandera_schema(schema: Any) -> bool:
    """Whether `schema` is a Pandera model class or schema object."""
    module = type(schema).__module__ if not isinstance(schema, type) else schema.__module__
    if module.startswith("pandera"):
        return True
    return isinstance(schema, type) and any(
        base.__module__.startswith("pandera") for base in schema.__mro__[1:]
    )
