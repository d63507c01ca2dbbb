"""Making lakehouse tables visible to DuckDB under their own names, so a check's
`repro_sql` / `query_or_sql` runs as written (DuckDB's own Iceberg reader needs an extension
downloaded from the internet, which phlo does not rely on)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from phlo._extras import require
from phlo.quality.sql import ident, relation

if TYPE_CHECKING:
    import duckdb

    from phlo.lakehouse import Lakehouse


def duckdb_connection(
    lakehouse: Lakehouse,
    tables: str | Sequence[str],
    *,
    ref: str = "main",
    filter: Any = None,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (new, or `connection`) holding each of `tables` (``ns.table``) as a
    DuckDB table of the same name, read from `ref` through phlo's scan (optionally only the
    rows of `filter`, e.g. ``("_phlo_partition_date", "=", date)``). The rows are copied into
    DuckDB's memory: load the checked partition, not a huge table."""
    require("sql", "duckdb_connection")
    import duckdb

    con = connection if connection is not None else duckdb.connect()
    for name in [tables] if isinstance(tables, str) else tables:
        namespace = name.rpartition(".")[0]
        if namespace:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(namespace)}")
        scan = lakehouse.table(name, ref).scan(filter=filter)
        rows = scan.to_reader()
        con.register("__phlo_scan", rows)
        try:
            con.execute(f"CREATE OR REPLACE TABLE {relation(name)} AS SELECT * FROM __phlo_scan")
        finally:
            con.unregister("__phlo_scan")
    return con
