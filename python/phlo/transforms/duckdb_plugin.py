"""phlo's dbt-duckdb plugin: before dbt runs anything, the lakehouse tables of the run's ref
appear in the run's DuckDB under the names dbt uses for them.

The profile phlo generates (`phlo.transforms.profile`) lists the relations::

    {"relation": ["raw", "orders"], "table": "raw.orders", "copy": false}

- a view (``copy`` false) reads the table's live Parquet files at the ref, as ``lh.sql`` does:
  dbt sources, and models the build does not rebuild;
- a copy (``copy`` true) is a DuckDB table holding the table's rows: incremental models and
  snapshots the build updates, so that ``is_incremental()`` and ``{{ this }}`` work as dbt
  documents them; phlo writes back only the rows the build added or changed.

A relation that already exists is left alone (the plugin may run once per connection), and a
table missing at the ref is skipped: dbt then reports the model that reads it.
"""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin

from phlo.sql import quote, register_table

__all__ = ["Plugin"]

#: Schema of the temporary views copies are made from.
_STAGING_SCHEMA = "__phlo_copy"


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._lakehouse = str(plugin_config["lakehouse"])
        self._project = str(plugin_config.get("project") or "")
        self._ref = str(plugin_config.get("ref", "main"))
        self._relations: list[dict[str, Any]] = list(plugin_config.get("relations", []))

    def configure_connection(self, conn: Any) -> None:
        from phlo.errors import NoSuchTableError
        from phlo.lakehouse_target import open_located

        lakehouse = open_located(self._lakehouse, self._project)
        for entry in self._relations:
            schema, name = entry["relation"]
            if _exists(conn, schema, name):
                continue
            try:
                table = lakehouse.table(entry["table"], self._ref)
            except NoSuchTableError:
                continue
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
            if entry.get("copy") or not _register_view(conn, table, schema, name):
                _copy(conn, table, schema, name)


def _register_view(conn: Any, table: Any, schema: str, name: str) -> bool:
    """Creates the view over the table's files; False when the table can only be read through
    phlo's scan (a stream registered on this connection alone, invisible to dbt's cursors)."""
    register_table(conn, table, (schema, name))
    ((definition,),) = conn.execute(
        "SELECT sql FROM duckdb_views() WHERE schema_name = ? AND view_name = ?", [schema, name]
    ).fetchall()
    if "__phlo_scan_" not in definition:
        return True
    conn.execute(f"DROP VIEW {quote(schema)}.{quote(name)}")
    return False


def _copy(conn: Any, table: Any, schema: str, name: str) -> None:
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(_STAGING_SCHEMA)}")
    staging = f"{quote(_STAGING_SCHEMA)}.{quote(name)}"
    register_table(conn, table, (_STAGING_SCHEMA, name))
    conn.execute(f"CREATE TABLE {quote(schema)}.{quote(name)} AS SELECT * FROM {staging}")
    conn.execute(f"DROP VIEW {staging}")


def _exists(conn: Any, schema: str, name: str) -> bool:
    found = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ? "
        "UNION ALL SELECT count(*) FROM duckdb_views() WHERE schema_name = ? AND view_name = ?",
        [schema, name, schema, name],
    ).fetchall()
    return any(count for (count,) in found)
