"""Publishing lakehouse tables (marts) to PostgreSQL: what to send, full or incremental."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from phlo import _args
from phlo.display import HtmlRepr
from phlo.errors import InputError, PhloError, PublishError
from phlo.progress import shows_activity
from phlo.publishing import postgres
from phlo.sql import connect, parquet_files, quote, read_columns, read_parquet_sql, register_table

if TYPE_CHECKING:
    import duckdb

    from phlo.lakehouse import Lakehouse, Table

__all__ = ["PublishResult", "publish_marts_to_postgres", "publish_table"]

#: Rows per Arrow batch streamed to PostgreSQL.
BATCH_ROWS = 128 * 1024


@dataclass(frozen=True)
class PublishResult(HtmlRepr):
    """What publishing one table did."""

    #: ``schema.table`` in PostgreSQL.
    table: str
    #: The lakehouse table it was published from, and the snapshot read.
    source: str
    snapshot_id: int | None
    #: ``"full"`` (a new table swapped in), ``"incremental"`` (changed rows upserted) or
    #: ``"unchanged"`` (``newest=True``: the snapshot was published already, nothing sent).
    mode: str
    #: Rows sent: all of them (full) or those changed since the last publish (incremental).
    rows: int
    rows_deleted: int
    #: Size of the PostgreSQL table afterwards, with its indexes.
    bytes: int
    seconds: float
    #: Why an incremental publish was done in full (first publish, schema changed…).
    reason: str | None = None

    def metadata(self) -> dict[str, Any]:
        """Materialization metadata for Dagster."""
        return {"dagster/row_count": self.rows, "dagster/table_name": self.table, **asdict(self)}


@shows_activity("publishing to PostgreSQL")
def publish_marts_to_postgres(
    context: Any,
    tables_to_publish: Mapping[str, str],
    data_source: str = "lakehouse",
    target_schema: str = "marts",
    lakehouse: Lakehouse | None = None,
    ref: str = "main",
    connection: str | None = None,
    *,
    primary_keys: Mapping[str, str | Sequence[str]] | None = None,
    indexes: Mapping[str, Sequence[str | Sequence[str]]] | None = None,
    incremental: bool = False,
    newest: bool = False,
) -> dict[str, PublishResult]:
    """Publishes lakehouse tables to PostgreSQL for BI: ``{"activity": "marts.mrt_activity"}``
    becomes ``target_schema.activity``, each table in its own transaction (see
    `publish_table`). `context` is a Dagster context (its log gets a line per table and the
    output metadata the stats) or None. `lakehouse` defaults to the project's; `connection`
    (a PostgreSQL URL) to `PHLO_POSTGRES_URL`, then ``postgres.url`` in phlo.yaml.
    `primary_keys` and `indexes` are keyed by PostgreSQL table name. `newest`: see
    `publish_table`."""
    if not isinstance(tables_to_publish, Mapping) or not tables_to_publish:
        raise InputError("tables_to_publish must map PostgreSQL table names to lakehouse tables")
    if lakehouse is None:
        from phlo.config import load_project

        lakehouse = load_project().open_lakehouse()
    primary_keys, indexes = dict(primary_keys or {}), dict(indexes or {})
    unknown = (set(primary_keys) | set(indexes)) - set(tables_to_publish)
    if unknown:
        raise InputError(
            f"primary_keys/indexes name tables that are not published: {sorted(unknown)}"
        )
    url = postgres.resolve_url(connection)
    results: dict[str, PublishResult] = {}
    con = postgres.connect(url)
    try:
        for name, source in tables_to_publish.items():
            result = publish_table(
                lakehouse,
                source,
                name,
                con,
                url=url,
                schema=target_schema,
                ref=ref,
                primary_key=primary_keys.get(name),
                indexes=indexes.get(name, ()),
                incremental=incremental,
                data_source=data_source,
                newest=newest,
            )
            results[name] = result
            if context is not None:
                context.log.info(
                    f"published {source}@{ref} to {result.table}: {result.mode}, "
                    f"{result.rows} rows in {result.seconds:.2f}s"
                )
    finally:
        con.close()
    if context is not None:
        context.add_output_metadata(
            {f"{name}.{k}": v for name, r in results.items() for k, v in r.metadata().items()}
            | {"dagster/row_count": sum(r.rows for r in results.values())}
        )
    return results


def publish_table(
    lakehouse: Lakehouse,
    source: str,
    name: str,
    con: Any,
    *,
    url: str,
    schema: str = "marts",
    ref: str = "main",
    primary_key: str | Sequence[str] | None = None,
    indexes: Sequence[str | Sequence[str]] = (),
    incremental: bool = False,
    data_source: str = "lakehouse",
    newest: bool = False,
) -> PublishResult:
    """Publishes lakehouse table `source` (at the head of `ref`) to ``schema.name`` over the
    ADBC connection `con`, in one transaction.

    Full: the rows are streamed with binary COPY into a new table, which gets its primary key
    and indexes and then replaces the old one (views on it are created again), so readers see
    the old table or the new one, never an empty or partial one. Incremental (needs a
    `primary_key`): only the rows changed since the snapshot last published are upserted and
    rows gone since are deleted; a publish that cannot be incremental (the first one, a
    changed schema, an expired snapshot, files another engine wrote with delete files) is
    done in full, and `PublishResult.reason` says why.

    `newest` (publishing after a promotion, when any number of promotions may publish the same
    table): the head of `ref` is read once this publish holds the table's lock, so a later
    publish never sends an older snapshot than an earlier one did, and a snapshot already
    published is not sent again (``mode="unchanged"``)."""
    started = time.perf_counter()
    key = _args.columns("primary_key", primary_key) if primary_key is not None else []
    index_columns = [_args.columns("indexes", i) for i in indexes]
    if incremental and not key:
        raise InputError(f"incremental publishing of {name} needs a primary_key", table=source)
    table = lakehouse.table(source, ref)
    snapshot_id = table.current_snapshot_id
    try:
        with con.cursor() as cur:
            postgres.prepare_schema(cur, schema)
            con.commit()
            postgres.lock_table(cur, schema, name)
            if newest:
                table = lakehouse.table(source, ref)
                snapshot_id = table.current_snapshot_id
                if postgres.last_published(cur, schema, name) == (
                    table.name,
                    snapshot_id,
                ) and postgres.table_exists(cur, schema, name):
                    return _unchanged(table.name, schema, name, snapshot_id, started, cur, con)
            previous = postgres.last_published(cur, schema, name) if incremental else None
            reason = (
                _why_full(table, snapshot_id, previous, cur, schema, name) if incremental else None
            )
            changes = None
            if incremental and reason is None:
                assert previous is not None and previous[1] is not None
                assert snapshot_id is not None
                changes = _changes(table, previous[1], snapshot_id, key)
                if changes is None:
                    reason = "the table has delete files or renamed columns (read by field id)"
            if changes is not None:
                rows, rows_deleted = postgres.upsert_rows(cur, schema, name, *changes, key)
                mode = "incremental"
            else:
                data, json_columns = _rows(table, snapshot_id)
                rows = postgres.replace_table(
                    cur, schema, name, data, json_columns, key, index_columns
                )
                rows_deleted, mode = 0, "full"
            postgres.record_publish(cur, schema, name, source, ref, snapshot_id, data_source, rows)
            con.commit()
            size = postgres.table_bytes(cur, schema, name)
            con.commit()
    except PhloError:
        con.rollback()
        raise
    except Exception as exc:
        con.rollback()
        raise PublishError(
            f"publishing {source} to {schema}.{name} failed, nothing changed: "
            f"{postgres.scrub(str(exc), url)}",
            table=source,
        ) from None  # the driver's exception may hold connection details
    return PublishResult(
        table=f"{schema}.{name}",
        source=source,
        snapshot_id=snapshot_id,
        mode=mode,
        rows=rows,
        rows_deleted=rows_deleted,
        bytes=size,
        seconds=time.perf_counter() - started,
        reason=reason,
    )


def _unchanged(
    source: str,
    schema: str,
    name: str,
    snapshot_id: int | None,
    started: float,
    cur: Any,
    con: Any,
) -> PublishResult:
    size = postgres.table_bytes(cur, schema, name)
    con.commit()
    return PublishResult(
        table=f"{schema}.{name}",
        source=source,
        snapshot_id=snapshot_id,
        mode="unchanged",
        rows=0,
        rows_deleted=0,
        bytes=size,
        seconds=time.perf_counter() - started,
        reason="this snapshot is published already",
    )


def _why_full(
    table: Table,
    snapshot_id: int | None,
    previous: tuple[str, int | None] | None,
    cur: Any,
    schema: str,
    name: str,
) -> str | None:
    """Why this incremental publish must be done in full, or None when it can be incremental."""
    if previous is None or not postgres.table_exists(cur, schema, name):
        return "first publish"
    if previous[0] != table.name:
        return f"last published from {previous[0]}"
    if previous[1] is None or snapshot_id is None:
        return "no snapshot to compare"
    _, metadata, _ = table._metadata()
    if previous[1] not in {s["snapshot-id"] for s in metadata.get("snapshots", [])}:
        return f"snapshot {previous[1]} published last has expired"
    before = read_columns(metadata, previous[1], pinned=True)
    after = read_columns(metadata, snapshot_id, pinned=True)
    if before != after:
        return "the table's columns changed"
    return None


def _pinned(table: Table, snapshot_id: int | None) -> Table:
    """The table read at exactly `snapshot_id`, whatever commits land meanwhile."""
    from phlo.lakehouse import Table

    if snapshot_id is None:
        return table
    return Table(
        table._native, table.name, table.ref, pinned=(f"snapshot {snapshot_id}", snapshot_id)
    )


def _rows(table: Table, snapshot_id: int | None) -> tuple[pa.RecordBatchReader, set[str]]:
    con = connect()
    register_table(con, _pinned(table, snapshot_id))
    namespace, name = table.name.rsplit(".", 1)
    return _as_published(con, f"SELECT * FROM {quote(namespace)}.{quote(name)}")


def _changes(
    table: Table, before: int, after: int, key: Sequence[str]
) -> tuple[pa.RecordBatchReader, pa.RecordBatchReader] | None:
    """Rows in `after` that are not in `before` (new or changed), and keys of `before` that
    are gone, from the data files only one of the snapshots has (a copy-on-write file keeps
    unchanged rows too, hence the row-wise difference). None when DuckDB cannot read the files
    directly (see `phlo.sql`)."""
    _, metadata, _ = table._metadata()
    old = parquet_files(table, before, metadata)
    new = parquet_files(table, after, metadata)
    columns = read_columns(metadata, after, pinned=True)
    if old is None or new is None or columns is None or not (old or new):
        return None
    added = [f for f in new if f not in set(old)]
    removed = [f for f in old if f not in set(new)]
    # With nothing on one side, that side is the other one's rows filtered to none.
    anything = read_parquet_sql(added or removed or new or old, columns, metadata)
    nothing = f"SELECT * FROM ({anything}) WHERE false"
    added_sql = read_parquet_sql(added, columns, metadata) if added else nothing
    removed_sql = read_parquet_sql(removed, columns, metadata) if removed else nothing
    keys = ", ".join(quote(c) for c in key)
    # Two streams at once: a DuckDB connection has one open result, so one each.
    changed, _ = _as_published(connect(), f"({added_sql}) EXCEPT ({removed_sql})")
    deleted, _ = _as_published(
        connect(), f"SELECT {keys} FROM ({removed_sql}) EXCEPT SELECT {keys} FROM ({added_sql})"
    )
    return changed, deleted


def _as_published(
    con: duckdb.DuckDBPyConnection, query: str
) -> tuple[pa.RecordBatchReader, set[str]]:
    """The rows of `query` as PostgreSQL takes them: nested values as JSON text (the columns
    are returned too). Streamed in batches."""
    relation = con.sql(query)
    json_columns = {
        column
        for column, kind in zip(relation.columns, relation.dtypes, strict=True)
        if str(kind).startswith(("STRUCT", "MAP", "UNION")) or str(kind).endswith("]")
    }
    if json_columns:
        select = ", ".join(
            f"to_json({quote(c)})::VARCHAR AS {quote(c)}" if c in json_columns else quote(c)
            for c in relation.columns
        )
        relation = con.sql(f"SELECT {select} FROM ({query})")
    return relation.to_arrow_reader(BATCH_ROWS), json_columns
