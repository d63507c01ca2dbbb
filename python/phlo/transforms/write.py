"""Writing what dbt built in the run's DuckDB to the lakehouse, on the run's ref.

- ``replace`` (table models, seeds): the model's rows become the table's contents. The old rows
  are deleted and the new ones appended inside one `Lakehouse.transaction` on the ref, so a
  reader of the ref sees the old or the new contents, never a mix or an empty table.
- ``upsert`` (incremental models, snapshots): the build updated a copy of the table (see the
  plugin); the rows of the copy that the table does not hold (``EXCEPT ALL``) are new or
  changed, and are merged by the model's ``unique_key`` (phlo's merge), or appended without
  one. Nothing changed: nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from phlo.errors import NoSuchTableError
from phlo.sql import quote, register_table

if TYPE_CHECKING:
    import duckdb

    from phlo.lakehouse import Lakehouse, Table
    from phlo.transforms.project import Node

__all__ = ["NodeWrite", "write_node"]

#: Rows per Arrow batch read from DuckDB.
BATCH_ROWS = 128 * 1024
#: Schema of the views over a copied table's lakehouse rows (for the difference).
_BASE_SCHEMA = "__phlo_base"

WriteOutcome = Literal["created", "replaced", "merged", "appended", "unchanged"]


@dataclass(frozen=True)
class NodeWrite:
    """What writing one dbt node to the lakehouse did."""

    table: str
    outcome: WriteOutcome
    #: Rows written: all of them (created, replaced), or those added or changed.
    rows: int
    #: The table's snapshot on the ref afterwards.
    snapshot_id: int | None


def write_node(
    con: duckdb.DuckDBPyConnection,
    lakehouse: Lakehouse,
    ref: str,
    node: Node,
    *,
    copied: bool,
    properties: dict[str, str],
) -> NodeWrite:
    """Writes `node` (built by dbt in `con`) to its lakehouse table on `ref`; `copied` says the
    build updated a copy of the existing table (an incremental model or snapshot)."""
    schema, name = node.relation
    relation = f"{quote(schema)}.{quote(name)}"
    try:
        table = lakehouse.table(node.table, ref)
    except NoSuchTableError:
        return _create(con, lakehouse, ref, node, relation, properties)
    if node.write_mode == "upsert" and copied:
        return _upsert(con, table, node, relation, properties)
    return _replace(con, lakehouse, ref, node, relation, properties)


def _create(
    con: duckdb.DuckDBPyConnection,
    lakehouse: Lakehouse,
    ref: str,
    node: Node,
    relation: str,
    properties: dict[str, str],
) -> NodeWrite:
    rows = _count(con, relation)
    reader = con.sql(f"SELECT * FROM {relation}").to_arrow_reader(BATCH_ROWS)
    lakehouse.create_namespace(node.table.rsplit(".", 1)[0], exist_ok=True)
    table = lakehouse.create_table(node.table, reader.schema, ref=ref)
    if rows:
        table.append(reader, properties=properties, message=f"dbt build {node.name}")
    return NodeWrite(node.table, "created", rows, table.current_snapshot_id)


def _replace(
    con: duckdb.DuckDBPyConnection,
    lakehouse: Lakehouse,
    ref: str,
    node: Node,
    relation: str,
    properties: dict[str, str],
) -> NodeWrite:
    rows = _count(con, relation)
    reader = con.sql(f"SELECT * FROM {relation}").to_arrow_reader(BATCH_ROWS)
    with lakehouse.transaction(ref, message=f"dbt build {node.name}", properties=properties) as tx:
        table = tx.table(node.table)
        _delete_all(table, properties)
        if rows:
            table.append(reader, properties=properties, schema_evolution="evolve")
    return NodeWrite(
        node.table, "replaced", rows, lakehouse.table(node.table, ref).current_snapshot_id
    )


def _upsert(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    node: Node,
    relation: str,
    properties: dict[str, str],
) -> NodeWrite:
    base = f"{quote(_BASE_SCHEMA)}.{quote(node.relation[1])}"
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(_BASE_SCHEMA)}")
    register_table(con, table, (_BASE_SCHEMA, node.relation[1]))
    # The increment of an incremental build is small by design: it is read whole.
    changed = con.sql(f"SELECT * FROM {relation} EXCEPT ALL SELECT * FROM {base}").to_arrow_table()
    if changed.num_rows == 0:
        return NodeWrite(node.table, "unchanged", 0, table.current_snapshot_id)
    message = f"dbt build {node.name}"
    if node.unique_key:
        merged = table.merge(
            changed,
            node.unique_key,
            properties=properties,
            message=message,
            schema_evolution="evolve",
        )
        return NodeWrite(
            node.table, "merged", merged.rows_inserted + merged.rows_updated, merged.snapshot_id
        )
    appended = table.append(
        changed, properties=properties, message=message, schema_evolution="evolve"
    )
    return NodeWrite(node.table, "appended", appended.rows, appended.snapshot_id)


def _delete_all(table: Table, properties: dict[str, str]) -> None:
    """Deletes every row: a delete needs a filter, and a column is null or not."""
    column = table.schema.names[0]
    table.delete((column, "is not null"), properties=properties)
    table.delete((column, "is null"), properties=properties)


def _count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    ((count,),) = con.execute(f"SELECT count(*) FROM {relation}").fetchall()
    return int(count)
