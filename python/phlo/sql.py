"""SQL over the lakehouse: DuckDB in process, every table of a ref under its Iceberg name.

Only the tables a query names are opened. A table is handed to DuckDB as ``read_parquet`` over
the live data files of the snapshot read: phlo writes copy-on-write, so those files hold exactly
the table's rows, and DuckDB prunes row groups by their statistics and reads only the columns
the query uses. A table where that would be wrong (delete files written by another engine, a
column renamed or a name reused since files were written, non-Parquet files) is read through
phlo's own scan instead, which resolves columns by Iceberg field id.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from phlo import _args
from phlo._extras import require
from phlo.errors import NoSuchTableError, SqlError

if TYPE_CHECKING:
    import duckdb

    from phlo.lakehouse import AsOf, Lakehouse, Table

__all__ = ["sql"]

#: Settings that keep DuckDB offline: it must never try to download an extension.
_OFFLINE: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def sql(
    lakehouse: Lakehouse, query: str, ref: str = "main", as_of: AsOf | None = None
) -> duckdb.DuckDBPyRelation:
    """Runs `query` (a SELECT or WITH query) over the tables of `ref`, as they were at `as_of`
    when given; see `Lakehouse.sql`."""
    require("sql")
    import duckdb

    query = _args.text("query", query)
    ref = _args.text("ref", ref)
    con = query_connection()
    namespaces = set(lakehouse.namespaces())
    for namespace, name in sorted(_table_refs(con, query)):
        if namespace in namespaces:
            register_table(con, lakehouse.table(f"{namespace}.{name}", ref, as_of=as_of))
    try:
        return con.sql(query)
    except duckdb.CatalogException as exc:
        raise NoSuchTableError(
            f"{exc}; tables are named namespace.table (e.g. raw.events): "
            f"see `phlo tables` for those of the lakehouse"
        ) from None
    except duckdb.Error as exc:
        raise SqlError(f"{exc}\nin query: {query}") from None


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection that never downloads anything."""
    require("sql")
    import duckdb

    return duckdb.connect(":memory:", config=_OFFLINE)


_database: tuple[int, duckdb.DuckDBPyConnection] | None = None
_database_lock = threading.Lock()


def query_connection() -> duckdb.DuckDBPyConnection:
    """A connection of its own to this process's shared in-memory DuckDB, whose default
    catalog is a new one of its own: views created on it are seen by no other query, and the
    catalog is detached once the connection and every relation made from it are gone.

    A new DuckDB per query would cost 50 to 80 ms more: opening it, and a first scan that is
    slower than every later one in the same database."""
    database = _shared_database()
    con = database.cursor()
    catalog = quote(f"__phlo_query_{uuid.uuid4().hex}")
    con.execute(f"ATTACH ':memory:' AS {catalog}")
    con.execute(f"USE {catalog}")
    # Relations hold their connection, so this runs when nothing can read the catalog.
    weakref.finalize(con, _detach, database, catalog).atexit = False
    return con


def _shared_database() -> duckdb.DuckDBPyConnection:
    """The process's DuckDB (a forked child opens its own: DuckDB's threads do not fork)."""
    global _database
    with _database_lock:
        if _database is None or _database[0] != os.getpid():
            _database = (os.getpid(), connect())
        return _database[1]


def _detach(database: duckdb.DuckDBPyConnection, catalog: str) -> None:
    with database.cursor() as con:
        con.execute(f"DETACH DATABASE IF EXISTS {catalog}")


def _table_refs(con: duckdb.DuckDBPyConnection, query: str) -> set[tuple[str, str]]:
    """The ``(schema, table)`` names the query reads, from DuckDB's own parser."""
    # fetchall: a result left unfinished would make the connection refuse the query itself.
    rows = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [query]).fetchall()
    (tree,) = rows[0] if rows else ("",)
    parsed = json.loads(tree)
    if parsed.get("error"):
        message = parsed.get("error_message", "")
        if parsed.get("error_type") == "not implemented":
            message = "lh.sql runs queries (SELECT, WITH … SELECT); " + message
        raise SqlError(f"{message}\nin query: {query}")
    return {
        (node["schema_name"], node["table_name"])
        for node in _nodes(parsed)
        if node.get("type") == "BASE_TABLE"
        and node.get("schema_name")
        and not node.get("catalog_name")
    }


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _nodes(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _nodes(value)


def register_table(
    con: duckdb.DuckDBPyConnection, table: Table, relation: tuple[str, str] | None = None
) -> None:
    """Creates the view ``"namespace"."table"`` (or ``relation``: schema and name) over the
    table's snapshot."""
    namespace, name = relation or table.name.rsplit(".", 1)
    view = f"{quote(namespace)}.{quote(name)}"
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(namespace)}")
    _, metadata, _ = table._metadata()
    snapshot_id = table.current_snapshot_id
    columns = read_columns(metadata, snapshot_id, pinned=table.as_of is not None)
    files = None
    if snapshot_id is not None and columns is not None:
        files = parquet_files(table, snapshot_id, metadata)
    if files and columns is not None:
        source = read_parquet_sql(files, columns, metadata)
        con.execute(f"CREATE VIEW {view} AS {source}")
    else:
        stream = f"__phlo_scan_{namespace}_{name}"
        con.register(stream, _PhloScan(table))
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM {quote(stream)}")


def read_parquet_sql(files: list[str], columns: list[str], metadata: dict[str, Any]) -> str:
    """A SELECT of `columns` from the table's data `files` (see `parquet_files`)."""
    paths = ", ".join(_literal(path) for path in files)
    # Schemas changed (columns added, types widened): match file columns by name, and never
    # take columns from Hive-style directory names.
    union = "true" if len(metadata.get("schemas", [])) > 1 else "false"
    selected = ", ".join(quote(c) for c in columns)
    return (
        f"SELECT {selected} FROM "
        f"read_parquet([{paths}], union_by_name={union}, hive_partitioning=false)"
    )


def parquet_files(table: Table, snapshot_id: int, metadata: dict[str, Any]) -> list[str] | None:
    """The live data files of the snapshot, or None when DuckDB must not read them directly
    (delete files written by other engines, non-Parquet files, columns renamed, files not on
    local disk)."""
    if _names_moved(metadata):
        return None
    files = []
    for path, deletes, parquet in table.scan(snapshot_id=snapshot_id)._native.data_files:
        # Object storage (s3://) would need DuckDB's httpfs extension, which is not installed
        # offline: such tables stream through phlo's own scan instead.
        if deletes or not parquet or not path.startswith("file://"):
            return None
        files.append(path.removeprefix("file://"))
    return files


def _names_moved(metadata: dict[str, Any]) -> bool:
    """Whether any field id was ever under another name, or any name under another id: then a
    file's Parquet column names are not the table's, and columns must be resolved by id."""
    by_id: dict[int, str] = {}
    by_name: dict[str, int] = {}
    for schema in metadata.get("schemas", []):
        for path, field_id in _field_paths(schema.get("fields", [])):
            if (
                by_id.setdefault(field_id, path) != path
                or by_name.setdefault(path, field_id) != field_id
            ):
                return True
    return False


def _field_paths(fields: list[dict[str, Any]], prefix: str = "") -> Iterator[tuple[str, int]]:
    for field in fields:
        path = f"{prefix}{field['name']}"
        yield path, int(field["id"])
        yield from _nested_paths(field["type"], path + ".")


def _nested_paths(kind: Any, prefix: str) -> Iterator[tuple[str, int]]:
    if not isinstance(kind, dict):
        return
    if kind.get("type") == "struct":
        yield from _field_paths(kind["fields"], prefix)
    elif kind.get("type") == "list":
        yield f"{prefix}element", int(kind["element-id"])
        yield from _nested_paths(kind["element"], prefix + "element.")
    elif kind.get("type") == "map":
        yield f"{prefix}key", int(kind["key-id"])
        yield f"{prefix}value", int(kind["value-id"])
        yield from _nested_paths(kind["key"], prefix + "key.")
        yield from _nested_paths(kind["value"], prefix + "value.")


def read_columns(
    metadata: dict[str, Any], snapshot_id: int | None, *, pinned: bool
) -> list[str] | None:
    """Top-level columns a read shows (time travel: the snapshot's schema; else the current
    one), or None when that schema is not the one the snapshot was written with (columns
    added since may be in no file at all) or the table has no data file yet."""
    if snapshot_id is None:
        return None
    snapshot = next(s for s in metadata["snapshots"] if s["snapshot-id"] == snapshot_id)
    written = snapshot.get("schema-id", metadata["current-schema-id"])
    if not pinned and written != metadata["current-schema-id"]:
        return None
    schema = next(s for s in metadata["schemas"] if s["schema-id"] == written)
    return [field["name"] for field in schema["fields"]]


class _PhloScan:
    """phlo's own scan of the table as an Arrow stream source; DuckDB asks for a new stream
    each time it reads the view, so a query may read the table more than once."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self._table.scan().__arrow_c_stream__(requested_schema)


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
