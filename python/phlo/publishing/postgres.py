"""The PostgreSQL side of publishing: connections whose errors never show the password, exact
column types, Arrow loaded with binary COPY (ADBC), the atomic swap, keyed upserts, and the
bookkeeping table that remembers which snapshot each table was published from."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

from phlo._extras import require
from phlo.errors import ConfigError, PostgresConnectionError, PublishError

#: One row per published table: what it was published from (a table in the target schema).
BOOKKEEPING = "_phlo_publications"


def resolve_url(connection: str | None) -> str:
    """`connection`, else `PHLO_POSTGRES_URL`, else ``postgres.url`` of phlo.yaml."""
    if connection:
        return connection
    if os.environ.get("PHLO_POSTGRES_URL"):
        return os.environ["PHLO_POSTGRES_URL"]
    from phlo.config import load_project

    url = load_project().postgres_url
    if url:
        return url
    raise ConfigError(
        "no PostgreSQL connection: pass connection='postgresql://user@host:5432/db', "
        "set PHLO_POSTGRES_URL, or set postgres.url in phlo.yaml"
    )


def redact(url: str) -> str:
    """The connection string with its password replaced by ``***`` (URL or key=value form)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        password = None
    if password:
        netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
        url = parts._replace(netloc=netloc).geturl()
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)


def scrub(message: str, url: str) -> str:
    """A driver message with the connection's password (and any URL of it) blanked out."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    found = re.search(r"password\s*=\s*'?([^'\s]+)", url)
    for secret in (password, found.group(1) if found else None):
        if secret:
            message = message.replace(secret, "***")
    return message.replace(url, redact(url))


def connect(url: str) -> Any:
    """An ADBC connection (one transaction at a time, committed explicitly); statements go
    through one of its cursors, which the functions below take."""
    require("postgres")
    import adbc_driver_manager
    import adbc_driver_postgresql.dbapi as adbc

    try:
        return adbc.connect(url)
    except adbc_driver_manager.Error as exc:
        message = scrub(str(exc), url).strip()
    raise PostgresConnectionError(
        f"cannot connect to PostgreSQL at {redact(url)}: {message}. Check the host, port, "
        "database, user and password (connection=, PHLO_POSTGRES_URL or postgres.url in phlo.yaml)"
    )


def _query(cur: Any, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows of a query, run on a cursor of its own that is closed at once: the connection
    allows one open result, and a load (COPY) must not find one."""
    with cur.connection.cursor() as query:
        query.execute(sql, parameters)
        return [tuple(row) for row in query.fetchall()]


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def pg_type(field: pa.Field, json_columns: set[str]) -> str:
    """The exact PostgreSQL type for an Arrow column (JSON text columns become jsonb)."""
    t = field.type
    if field.name in json_columns:
        return "jsonb"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "text"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytea"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    raise PublishError(
        f"column {field.name} has type {t}, which phlo cannot publish to PostgreSQL; "
        "cast it in a model (e.g. to a string) first",
        column=field.name,
    )


def replace_table(
    cur: Any,
    schema: str,
    name: str,
    data: pa.RecordBatchReader,
    json_columns: set[str],
    primary_key: Sequence[str],
    indexes: Sequence[Sequence[str]],
) -> int:
    """Loads `data` into a new table and swaps it in for ``schema.name`` in the connection's
    open transaction: readers see the old table until the commit, then the new one. Views on
    the old table are dropped with it and created again from their definitions."""
    target = f"{quote(schema)}.{quote(name)}"
    staging = f"_phlo_new_{uuid.uuid4().hex[:12]}"
    # Nested columns arrive as JSON text: loaded as json (binary COPY sends text), then jsonb.
    loaded = {c: "json" for c in json_columns}
    columns = ", ".join(
        f"{quote(f.name)} {loaded.get(f.name) or pg_type(f, set())}" for f in data.schema
    )
    cur.execute(f"CREATE TABLE {quote(schema)}.{quote(staging)} ({columns})")
    rows = int(cur.adbc_ingest(staging, data, mode="append", db_schema_name=schema))
    new = f"{quote(schema)}.{quote(staging)}"
    if json_columns:
        alter = ", ".join(
            f"ALTER COLUMN {quote(c)} TYPE jsonb USING {quote(c)}::jsonb" for c in json_columns
        )
        cur.execute(f"ALTER TABLE {new} {alter}")
    if primary_key:
        keys = ", ".join(quote(c) for c in primary_key)
        cur.execute(
            f"ALTER TABLE {new} ADD CONSTRAINT {quote(staging + '_pkey')} PRIMARY KEY ({keys})"
        )
    renames = []
    for i, columns_of_index in enumerate(indexes):
        temporary = f"{staging}_{i}_idx"
        final = f"{name}_{'_'.join(columns_of_index)}_idx"[:63]
        cols = ", ".join(quote(c) for c in columns_of_index)
        cur.execute(f"CREATE INDEX {quote(temporary)} ON {new} ({cols})")
        renames.append((temporary, final))
    cur.execute(f"ANALYZE {new}")
    views = _dependent_views(cur, target)
    cur.execute(f"DROP TABLE IF EXISTS {target}{' CASCADE' if views else ''}")
    cur.execute(f"ALTER TABLE {new} RENAME TO {quote(name)}")
    if primary_key:
        cur.execute(
            f"ALTER TABLE {target} RENAME CONSTRAINT {quote(staging + '_pkey')} "
            f"TO {quote((name + '_pkey')[:63])}"
        )
    for temporary, final in renames:
        cur.execute(f"ALTER INDEX {quote(schema)}.{quote(temporary)} RENAME TO {quote(final)}")
    for view_schema, view_name, kind, definition in views:
        materialized = "MATERIALIZED " if kind == "m" else ""
        cur.execute(
            f"CREATE {materialized}VIEW {quote(view_schema)}.{quote(view_name)} AS {definition}"
        )
    return rows


def _dependent_views(cur: Any, target: str) -> list[tuple[str, str, str, str]]:
    """Views (and materialized views) built on `target`, directly or through other views, in
    an order they can be created in again: ``(schema, name, relkind, definition)``."""
    return _query(
        cur,
        """
        WITH RECURSIVE deps(oid, depth) AS (
            SELECT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
            WHERE d.refobjid = to_regclass($1) AND r.ev_class <> d.refobjid
            UNION
            SELECT r.ev_class, deps.depth + 1 FROM deps
            JOIN pg_depend d ON d.refobjid = deps.oid JOIN pg_rewrite r ON r.oid = d.objid
            WHERE r.ev_class <> deps.oid AND deps.depth < 100
        )
        SELECT n.nspname, c.relname, c.relkind::text, pg_get_viewdef(c.oid)
        FROM deps JOIN pg_class c ON c.oid = deps.oid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        GROUP BY c.oid, n.nspname, c.relname, c.relkind
        ORDER BY max(deps.depth), c.oid
        """,
        (target,),
    )


def upsert_rows(
    cur: Any,
    schema: str,
    name: str,
    changed: pa.RecordBatchReader,
    deleted: pa.RecordBatchReader,
    key: Sequence[str],
) -> tuple[int, int]:
    """Upserts `changed` rows by `key` into ``schema.name`` and deletes the `deleted` keys, in
    the open transaction. Returns ``(rows upserted, rows deleted)``."""
    target = f"{quote(schema)}.{quote(name)}"
    types = _column_types(cur, schema, name)
    tag = uuid.uuid4().hex[:12]
    changes, gone = f"_phlo_upsert_{tag}", f"_phlo_delete_{tag}"
    upserted = int(cur.adbc_ingest(changes, changed, mode="create", temporary=True))
    deleted_count = int(cur.adbc_ingest(gone, deleted, mode="create", temporary=True))
    columns = [c for c in changed.schema.names]
    listed = ", ".join(quote(c) for c in columns)
    cast = ", ".join(f"{quote(c)}::{types[c]}" for c in columns)
    updates = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in columns if c not in key)
    on_conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
    keys = ", ".join(quote(c) for c in key)
    cur.execute(
        f"INSERT INTO {target} ({listed}) SELECT {cast} FROM {quote(changes)} "
        f"ON CONFLICT ({keys}) {on_conflict}"
    )
    match = " AND ".join(f"t.{quote(c)} = d.{quote(c)}::{types[c]}" for c in key)
    cur.execute(f"DELETE FROM {target} t USING {quote(gone)} d WHERE {match}")
    cur.execute(f"DROP TABLE {quote(changes)}, {quote(gone)}")
    return upserted, deleted_count


def _column_types(cur: Any, schema: str, name: str) -> dict[str, str]:
    return dict(
        _query(
            cur,
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            (f"{quote(schema)}.{quote(name)}",),
        )
    )


def table_exists(cur: Any, schema: str, name: str) -> bool:
    found = _query(cur, "SELECT to_regclass($1) IS NOT NULL", (f"{quote(schema)}.{quote(name)}",))
    return bool(found[0][0])


def table_bytes(cur: Any, schema: str, name: str) -> int:
    found = _query(
        cur, "SELECT pg_total_relation_size(to_regclass($1))", (f"{quote(schema)}.{quote(name)}",)
    )
    return int(found[0][0] or 0)


def prepare_schema(cur: Any, schema: str) -> None:
    """Creates `schema` and its bookkeeping table unless they exist, in the open transaction
    (commit it next). Publishes into one schema take turns here: two sessions creating the
    same schema or table at once would fail on PostgreSQL's unique catalog indexes."""
    schema_exists = bool(_query(cur, "SELECT 1 FROM pg_namespace WHERE nspname = $1", (schema,)))
    if schema_exists and table_exists(cur, schema, BOOKKEEPING):
        return  # nothing to create (a role without CREATE on the database may publish)
    _advisory_lock(cur, f"phlo.publish.schema:{schema}")
    if not schema_exists:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS {quote(schema)}.{quote(BOOKKEEPING)} "
        "(table_name text PRIMARY KEY, source_table text NOT NULL, ref text NOT NULL, "
        "snapshot_id bigint, data_source text, rows bigint, "
        "published_at timestamptz NOT NULL DEFAULT now())"
    )


def lock_table(cur: Any, schema: str, name: str) -> None:
    """Waits, in the open transaction, until no other publish of ``schema.name`` is under way,
    and holds it until the transaction ends: the snapshot an incremental publish starts from
    (the last one recorded) must still be the table's when its changes apply, and two full
    publishes must not both rename a new table into place."""
    _advisory_lock(cur, f"phlo.publish.table:{schema}.{name}")


def _advisory_lock(cur: Any, key: str) -> None:
    _query(cur, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", (key,))


def last_published(cur: Any, schema: str, name: str) -> tuple[str, int | None] | None:
    """``(source table, snapshot id)`` of the last publish of ``schema.name``, if recorded."""
    if not table_exists(cur, schema, BOOKKEEPING):
        return None
    found = _query(
        cur,
        f"SELECT source_table, snapshot_id FROM {quote(schema)}.{quote(BOOKKEEPING)} "
        "WHERE table_name = $1",
        (name,),
    )
    return (found[0][0], found[0][1]) if found else None


def record_publish(
    cur: Any,
    schema: str,
    name: str,
    source: str,
    ref: str,
    snapshot_id: int | None,
    data_source: str,
    rows: int,
) -> None:
    """Remembers, in the open transaction, which snapshot ``schema.name`` now holds."""
    table = f"{quote(schema)}.{quote(BOOKKEEPING)}"
    cur.execute(
        f"INSERT INTO {table} (table_name, source_table, ref, snapshot_id, data_source, rows) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (table_name) DO UPDATE SET "
        "source_table = EXCLUDED.source_table, ref = EXCLUDED.ref, "
        "snapshot_id = EXCLUDED.snapshot_id, data_source = EXCLUDED.data_source, "
        "rows = EXCLUDED.rows, published_at = now()",
        (name, source, ref, snapshot_id, data_source, rows),
    )
