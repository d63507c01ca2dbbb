"""`Lakehouse` and `Table`: the Python face of the embedded catalog and its Iceberg tables."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import pyarrow as pa

from phlo import _args, _native, display
from phlo._arrow import as_arrow
from phlo._extras import require
from phlo._filters import Filter, normalize_filters, timestamp_micros
from phlo.display import HtmlRepr
from phlo.errors import (
    CommitStateUnknownError,
    ConfigError,
    InputError,
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    TableAlreadyExistsError,
)
from phlo.merge import MergeResult, MergeStrategy, WriteMode, merge_into
from phlo.schema.iceberg import table_schema

if TYPE_CHECKING:
    import duckdb
    import pandas
    import polars

__all__ = [
    "AppendResult",
    "CompactResult",
    "DeleteResult",
    "DeleteStats",
    "ExpireResult",
    "Lakehouse",
    "LogEntry",
    "ManifestRewrite",
    "OrphanFiles",
    "PartitionField",
    "RefDiff",
    "RefMergeResult",
    "RowDiff",
    "Scan",
    "Snapshot",
    "Table",
    "Transaction",
]

PartitionBy = Sequence[tuple[str, str] | str]
SchemaEvolution = Literal["strict", "evolve"]


@dataclass(frozen=True)
class AppendResult(HtmlRepr):
    """What one append committed."""

    snapshot_id: int
    rows: int
    files_added: int
    bytes_written: int
    commit_retries: int


@dataclass(frozen=True)
class DeleteResult(HtmlRepr):
    """What `Table.delete` did. Deleting nothing commits nothing: `snapshot_id` is None."""

    snapshot_id: int | None
    rows_deleted: int
    #: Data files read: those whose partition values and column ranges could not decide.
    files_scanned: int
    files_removed: int
    #: Files written with the surviving rows of files where only some rows matched.
    files_added: int
    #: Position-delete files written (merge-on-read).
    delete_files_added: int
    bytes_written: int
    commit_retries: int


@dataclass(frozen=True)
class DeleteStats(HtmlRepr):
    """What merge-on-read writes left in a table's head (from its snapshot summary)."""

    data_files: int
    delete_files: int
    #: Rows stored in the data files, deleted ones included.
    rows: int
    #: Rows the position-delete files remove.
    deleted_rows: int

    @property
    def read_amplification(self) -> float:
        """Rows a full scan decodes per row it returns: ``rows / (rows - deleted_rows)`` (1.0
        without deletes). Compaction brings it back to 1.0."""
        live = self.rows - self.deleted_rows
        return self.rows / live if live > 0 else (1.0 if self.rows == 0 else float("inf"))


@dataclass(frozen=True)
class Snapshot(HtmlRepr):
    """One entry of a table's history."""

    snapshot_id: int
    parent_id: int | None
    sequence_number: int
    timestamp: dt.datetime
    operation: str
    summary: dict[str, str] = field(repr=False)


@dataclass(frozen=True)
class LogEntry(HtmlRepr):
    """One change a ref went through in this catalog (a table commit, a merge, a ref created
    or deleted). Commits other engines make on `main` are in the tables' histories only."""

    commit_id: str
    ref: str
    tables: list[str]
    message: str
    author: str
    timestamp: dt.datetime
    run_id: str | None
    #: Properties given with the change (``properties=`` of a write, merge or transaction).
    properties: dict[str, str] = field(default_factory=dict)


#: A point in a table's past: a time (datetime, ISO string, ms since epoch) or a log commit.
AsOf: TypeAlias = dt.datetime | int | str | LogEntry


@dataclass(frozen=True)
class ExpireResult(HtmlRepr):
    """What `Lakehouse.expire_snapshots` removed."""

    snapshots_expired: int
    #: Manifest lists, manifests and data files that only expired snapshots referenced.
    files_deleted: int
    #: ``table@ref`` for every branch whose table metadata was rewritten.
    refs_rewritten: list[str]
    #: ``table@ref:name`` for every table-level ref (a tag or branch in the table's own
    #: metadata) removed because its ``max-ref-age-ms`` passed.
    refs_expired: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OrphanFiles(HtmlRepr):
    """Files under table locations that nothing references (see `remove_orphan_files`)."""

    files: list[str]
    bytes: int
    #: False for a dry run (the files were only listed).
    deleted: bool


@dataclass(frozen=True)
class CompactResult(HtmlRepr):
    """What `Table.compact` rewrote (all zero, and no snapshot, when there was nothing to do)."""

    #: Small data files replaced.
    files_rewritten: int
    #: Files written in their place.
    files_added: int
    bytes_before: int
    bytes_after: int
    #: Rows copied (the table's rows are the same before and after).
    rows: int
    #: The ``replace`` snapshot committed, or None.
    snapshot_id: int | None
    commit_retries: int


@dataclass(frozen=True)
class ManifestRewrite(HtmlRepr):
    """What `Lakehouse.rewrite_manifests` did."""

    #: The ``replace`` snapshot committed (None: the table had no data yet).
    snapshot_id: int | None
    manifests_before: int
    manifests_after: int


@dataclass(frozen=True)
class RefDiff(HtmlRepr):
    """Tables that differ between two refs."""

    #: On both refs, at different versions.
    changed: list[str]
    #: Only on the second ref.
    added: list[str]
    #: Only on the first ref.
    removed: list[str]


@dataclass(frozen=True)
class RowDiff(HtmlRepr):
    """Rows of one table that differ between two refs, by key."""

    added: int
    removed: int
    #: Same key, other content.
    changed: int
    #: Up to `sample` rows of each kind (changed: as they are on the second ref).
    added_sample: pa.Table = field(repr=False)
    removed_sample: pa.Table = field(repr=False)
    changed_sample: pa.Table = field(repr=False)


@dataclass(frozen=True)
class RefMergeResult(HtmlRepr):
    """What merging one branch into another did, per table."""

    #: Tables changed on the source only: the target now points where the source does.
    fast_forwarded: list[str]
    #: Tables that existed on the source only and were added to the target.
    added: list[str]
    #: Tables changed on both sides where the source only appended: its appends were
    #: committed again on top of the target (content-aware rebase).
    rebased: list[str]


@dataclass(frozen=True)
class PartitionField(HtmlRepr):
    """One field of a partition spec: `transform(source_column)` stored as `name`."""

    name: str
    source_column: str
    transform: str


class Lakehouse:
    """A lakehouse: a catalog (a SQLite file that PyIceberg's ``SqlCatalog("phlo", ...)`` also
    reads) and a warehouse of Iceberg data and metadata (a local folder or S3).
    `open(root)` is the embedded one: ``<root>/catalog.db`` + ``<root>/warehouse/``;
    `connect(catalog, warehouse, properties)` takes both as URIs.

    >>> lh = Lakehouse.open(".phlo")
    >>> lh.create_namespace("raw", exist_ok=True)
    """

    def __init__(self, native: _native.NativeLakehouse, catalog_uri: str | None = None) -> None:
        self._native = native
        self._catalog_uri = catalog_uri

    @classmethod
    def connect(
        cls, catalog: str, warehouse: str, properties: Mapping[str, str] | None = None
    ) -> Lakehouse:
        """Connects to the catalog at URI `catalog` and the warehouse at URI `warehouse`.

        `catalog`: ``sqlite:///absolute/path/catalog.db`` (created when missing),
        ``postgresql://user:password@host:port/database`` (a catalog many workers share) or
        ``http(s)://host:port`` (an Iceberg REST catalog: `properties` may hold ``token`` or
        ``credential="client_id:secret"``; refs are table branches there, catalog-wide
        features raise `ConfigError`, see docs/catalogs.md).
        `warehouse`: ``file:///absolute/folder`` or ``s3://bucket/prefix``. `properties` are
        Iceberg's storage keys (``s3.endpoint``, ``s3.access-key-id``,
        ``s3.secret-access-key``, ``s3.session-token``, ``s3.region``,
        ``s3.path-style-access``; the ``AWS_*`` environment variables fill what is missing).
        An S3 warehouse is checked at once: a wrong endpoint or credential raises
        `StorageError`, a bad URI `ConfigError`. Credentials are never shown."""
        catalog = _args.text("catalog", catalog)
        warehouse = _args.text("warehouse", warehouse)
        props = _args.string_map("properties", properties)
        return cls(_native.NativeLakehouse.connect(catalog, warehouse, props), catalog)

    @classmethod
    def open(cls, root: str | os.PathLike[str] = ".phlo") -> Lakehouse:
        """Opens the lakehouse at `root`, creating it if it does not exist."""
        if not isinstance(root, str | os.PathLike):
            raise InputError(f"root must be a path, not {root!r}")
        return cls(_native.NativeLakehouse(Path(root)))

    @property
    def root(self) -> Path:
        """The embedded lakehouse's folder (`open`). A lakehouse connected by URIs has none:
        `ConfigError` (features that still need one, such as dbt transforms, say so this way)."""
        root = self._native.root
        if root is None:
            raise ConfigError(
                f"the lakehouse at {self.warehouse} was connected by URIs and has no root folder; "
                "use Lakehouse.open(root) for features that need a local lakehouse folder"
            )
        return Path(root)

    @property
    def scratch_dir(self) -> Path:
        """A local folder for temporary files (staged batches): the root folder of an
        embedded lakehouse, else a folder per catalog and warehouse under the system's
        temporary directory."""
        root = self._native.root
        if root is not None:
            return Path(root)
        key = hashlib.sha256(f"{self.catalog_uri}\n{self.warehouse}".encode()).hexdigest()
        return Path(tempfile.gettempdir()) / "phlo-scratch" / key[:16]

    @property
    def catalog_uri(self) -> str:
        """SQLAlchemy URI of the catalog database (for PyIceberg's ``SqlCatalog``); for
        PostgreSQL it names the psycopg driver, and holds the password given to `connect`."""
        uri = self._catalog_uri
        if uri is None:
            return f"sqlite:///{self.root / 'catalog.db'}"
        scheme, _, rest = uri.partition("://")
        if scheme in ("postgresql", "postgres"):
            return f"postgresql+psycopg://{rest}"
        # phlo reads sqlite:///abs/path as absolute; SQLAlchemy needs sqlite:////abs/path.
        path = uri.removeprefix("sqlite:///")
        if path != uri and not path.startswith("/"):
            return f"sqlite:////{path}"
        return uri

    @property
    def warehouse(self) -> str:
        """The warehouse URI (``file:///…/warehouse``, ``s3://bucket/prefix``)."""
        return self._native.warehouse

    def create_namespace(self, namespace: str, *, exist_ok: bool = False) -> None:
        exist_ok = _args.flag("exist_ok", exist_ok)
        try:
            self._native.create_namespace(_args.text("namespace", namespace))
        except NamespaceAlreadyExistsError:
            if not exist_ok:
                raise

    def namespaces(self) -> list[str]:
        return self._native.list_namespaces()

    def drop_namespace(self, namespace: str) -> None:
        """Drops an empty namespace."""
        self._native.drop_namespace(_args.text("namespace", namespace))

    def tables(self, namespace: str) -> list[str]:
        """Full names (``namespace.table``) of the tables in `namespace`."""
        if not self._native.namespace_exists(_args.text("namespace", namespace)):
            raise NoSuchNamespaceError(f"namespace {namespace} does not exist; see namespaces()")
        return self._native.list_tables(namespace)

    def create_table(
        self,
        name: str,
        schema: Any,
        *,
        partition_by: PartitionBy | None = None,
        properties: Mapping[str, str] | None = None,
        exist_ok: bool = False,
        ref: str = "main",
    ) -> Table:
        """Creates an Iceberg v2 table.

        `schema` is a Pandera `DataFrameModel` / `DataFrameSchema` (see
        `phlo.pandera_to_iceberg`), a pyarrow Schema or a ``{column: pyarrow type}`` mapping;
        non-nullable fields become required columns. `partition_by` lists ``(column, transform)`` pairs or
        strings ``"region"`` / ``"day(ts)"``; transforms are identity, year, month, day, hour,
        bucket[N] and truncate[W]. With `ref`, the table is created on that branch only;
        merging the branch adds it to the target.
        """
        arrow_schema = table_schema(schema)
        properties = _args.string_map("properties", properties)
        exist_ok = _args.flag("exist_ok", exist_ok)
        try:
            self._native.create_table(
                _args.text("name", name),
                arrow_schema,
                _partition_pairs(partition_by),
                properties,
                _args.text("ref", ref),
            )
        except TableAlreadyExistsError:
            if not exist_ok:
                raise
        return self.table(name, ref)

    def table(self, name: str, ref: str | None = None, *, as_of: AsOf | None = None) -> Table:
        """Opens an existing table on branch or tag `ref` (``"main"`` by default); reads and
        writes of the returned `Table` go to that ref (raises `NoSuchTableError` if the table
        is not there).

        `as_of` opens the table as it was at a point in the past, read-only: a datetime, an
        ISO string or ms since epoch (the last snapshot committed by then on `ref`), or a
        commit of `log()` (a `LogEntry` or its `commit_id`: the table right after that commit,
        on the commit's ref)."""
        _args.text("name", name)
        _args.optional_text("ref", ref)
        if as_of is None:
            ref = ref or "main"
            self._native.table_metadata(name, ref)
            return Table(self._native, name, ref)
        commit_id, as_of_ms = _commit_or_time(as_of)
        ref, snapshot_id = self._native.snapshot_as_of(name, ref, as_of_ms, commit_id)
        if snapshot_id is None:
            raise InputError(f"{name} on {ref} had no snapshot yet at {as_of!r} (it was empty)")
        return Table(self._native, name, ref, pinned=(as_of, snapshot_id))

    def create_branch(self, name: str, from_ref: str = "main") -> None:
        """Creates branch `name` with every table as it is on `from_ref` (pointers only: no
        data is copied). Writes on the branch are invisible elsewhere until it is merged."""
        self._native.create_ref(
            _new_ref("branch", name), "branch", _args.text("from_ref", from_ref)
        )

    def create_tag(self, name: str, ref: str = "main") -> None:
        """Tags the current state of `ref`. Tags are immutable: writes to them are refused."""
        self._native.create_ref(_new_ref("tag", name), "tag", _args.text("ref", ref))

    def branches(self) -> list[str]:
        """Branch names, `main` first."""
        return ["main", *(name for name, _, _ in self._native.list_refs("branch"))]

    def tags(self) -> list[str]:
        return [name for name, _, _ in self._native.list_refs("tag")]

    def delete_branch(self, name: str) -> None:
        """Deletes a branch's pointers; files stay (other refs may use them)."""
        self._native.delete_branch(_args.text("name", name))

    def log(self, ref: str | None = None, limit: int = 100) -> list[LogEntry]:
        """The newest `limit` changes of `ref` (of every ref when `None`), newest first. The
        message and author are what the write was given (``message=``, ``author=``), else a
        generated message and `PHLO_AUTHOR` or the OS user; `run_id` comes from the
        `phlo.run-id` property."""
        entries = []
        ref, limit = _args.optional_text("ref", ref), _args.integer("limit", limit, minimum=0)
        for e in self._native.log(ref, limit):
            created_at_ms = e.pop("created_at_ms")
            timestamp = dt.datetime.fromtimestamp(created_at_ms / 1000, dt.UTC)
            entries.append(LogEntry(timestamp=timestamp, **e))
        return entries

    def diff(self, a: str, b: str) -> RefDiff:
        """Which tables differ between refs `a` and `b` (e.g. ``lh.diff("main", "dev")``)."""
        changed, added, removed = self._native.diff(_args.text("a", a), _args.text("b", b))
        return RefDiff(changed=changed, added=added, removed=removed)

    def transaction(
        self,
        ref: str = "main",
        *,
        message: str | None = None,
        author: str | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> Transaction:
        """Writes to several tables that land on `ref` together or not at all::

            with lh.transaction() as tx:
                tx.table("raw.orders").append(orders)
                tx.table("raw.customers").merge(customers, "id")

        The writes go to a private branch (``tx/…``) that is merged into `ref` when the block
        ends without an exception, and deleted either way; when the block raises or the merge
        fails (other than `CommitStateUnknownError`), the data and metadata files its writes
        left are deleted too. The private branch is not listed
        by `branches()`; if the process dies before cleaning up, maintenance
        (`expire_snapshots`, `remove_orphan_files`) removes it. Concurrent transactions that
        only append wait for each other rather than fail. `message`, `author` and
        `properties` are recorded with the merge in the log."""
        if _args.text("ref", ref) in self.tags():
            raise InputError(f"{ref} is a tag; tags are immutable: run the transaction on a branch")
        return Transaction(self, ref, _commit_properties(properties, message, author))

    def diff_rows(
        self, table: str, a: str, b: str, *, key: str | Sequence[str], sample: int = 20
    ) -> RowDiff:
        """Rows of `table` added, removed and changed (same `key`, other content) from ref `a`
        to ref `b`. Only data files that are not shared by both refs are read."""
        d = self._native.diff_rows(
            _args.text("table", table),
            _args.text("a", a),
            _args.text("b", b),
            _args.columns("key", key),
            _args.integer("sample", sample, minimum=0),
        )
        return RowDiff(
            added=d["added"],
            removed=d["removed"],
            changed=d["changed"],
            added_sample=pa.table(pa.record_batch(d["added_sample"])),
            removed_sample=pa.table(pa.record_batch(d["removed_sample"])),
            changed_sample=pa.table(pa.record_batch(d["changed_sample"])),
        )

    def merge(
        self,
        source: str,
        into: str = "main",
        *,
        message: str | None = None,
        author: str | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> RefMergeResult:
        """Merges branch `source` into `into`, all tables atomically: tables changed on the
        source only are fast-forwarded, tables new on the source are added, tables changed on
        both sides get the source's changes re-applied on top of the target (rebased): its
        appends always; its upserts when every file they replaced is still on the target and
        no file the target gained since the fork holds one of their keys; its added columns and
        type promotions join the target's schema. Anything else is a `CommitConflictError`
        naming the tables and why, and nothing merges. When the target moves while merging,
        the merge is planned again rather than failing. `message`, `author` and `properties`
        are recorded in the log."""
        fast_forwarded, added, rebased = self._native.merge_ref(
            _args.text("source", source),
            _args.text("into", into),
            _commit_properties(properties, message, author),
        )
        return RefMergeResult(fast_forwarded=fast_forwarded, added=added, rebased=rebased)

    def sql(
        self, query: str, ref: str = "main", as_of: AsOf | None = None
    ) -> duckdb.DuckDBPyRelation:
        """Runs a SQL query (DuckDB's dialect, in process) over the tables of branch or tag
        `ref`, as they were at `as_of` when given, each under its name (``raw.events``).
        Returns a DuckDB relation: ``.fetchall()``, ``.arrow()``, ``.pl()``, ``.df()``. Only
        the tables the query names are opened. A missing table raises `NoSuchTableError`,
        a bad query `SqlError`. Needs ``phlo[sql]``; see docs/sql.md."""
        from phlo.sql import sql

        return sql(self, query, ref, as_of)

    def drop_table(self, name: str, *, purge: bool = False, ref: str = "main") -> None:
        """Removes the table from branch `ref` (other refs keep it; merging the branch does not
        carry the drop over). With `purge`, deletes its files too, which is refused while
        another ref still has the table."""
        self._native.drop_table(
            _args.text("name", name), _args.flag("purge", purge), _args.text("ref", ref)
        )

    def expire_snapshots(
        self,
        older_than: dt.datetime | dt.timedelta = dt.timedelta(days=5),
        keep_last: int = 1,
    ) -> ExpireResult:
        """Drops, on every branch of every table, the snapshots committed before `older_than`
        (a time, or an age) beyond the newest `keep_last`, and deletes the files only they
        referenced. Never removed: a branch's current snapshot, its history back to where it
        forked (merges need it), anything a tag or another ref references. Time travel
        reaches back only to retained snapshots.

        `older_than` and `keep_last` are a floor; a table's own retention settings keep more,
        never less: the properties ``history.expire.max-snapshot-age-ms`` (snapshots younger
        than that stay) and ``history.expire.min-snapshots-to-keep``, and the tags and branches
        in the table's own metadata (e.g. PyIceberg's ``manage_snapshots().create_tag(...)``):
        their snapshots stay, a table-level branch's history under its own
        ``max-snapshot-age-ms``/``min-snapshots-to-keep``. A table-level ref (never ``main``)
        older than its ``max-ref-age-ms`` (or ``history.expire.max-ref-age-ms``) is removed
        (`ExpireResult.refs_expired`). A setting that is not a positive number raises
        `InputError` naming the table before anything is changed."""
        keep_last = _args.integer("keep_last", keep_last, minimum=1)
        expired, deleted, rewritten, aged_out = self._native.expire_snapshots(
            _cutoff_ms(older_than), keep_last
        )
        return ExpireResult(
            snapshots_expired=expired,
            files_deleted=deleted,
            refs_rewritten=rewritten,
            refs_expired=aged_out,
        )

    def rewrite_manifests(self, table: str, ref: str = "main") -> ManifestRewrite:
        """Regroups every live data file of `table` on branch `ref` into manifests of about
        ``commit.manifest.target-size-bytes`` (8 MiB), sorted by partition, as one ``replace``
        snapshot; rows and file entries (with their history) stay the same. Commits merge small
        manifests on their own (``commit.manifest-merge.enabled``); this regroups all of them
        at once, e.g. after many commits with merging switched off. Refused on a tag."""
        snapshot_id, before, after = self._native.rewrite_manifests(table, ref, {})
        return ManifestRewrite(
            snapshot_id=snapshot_id, manifests_before=before, manifests_after=after
        )

    def remove_orphan_files(
        self,
        older_than: dt.datetime | dt.timedelta = dt.timedelta(days=3),
        *,
        dry_run: bool = False,
    ) -> OrphanFiles:
        """Deletes files under table locations that no ref, retained snapshot or branch fork
        point references, e.g. the leftovers of a write that crashed. Only files last modified
        before `older_than` are touched, so writes in progress keep theirs; a phlo write that
        started before that cutoff fails at its commit (`CommitConflictError`) rather than land
        without its files. `dry_run` lists without deleting."""
        dry_run = _args.flag("dry_run", dry_run)
        files, size = self._native.remove_orphan_files(_cutoff_ms(older_than), dry_run)
        return OrphanFiles(files=files, bytes=size, deleted=not dry_run)

    def __repr__(self) -> str:
        return display.lakehouse_text(self)

    def _repr_html_(self) -> str:
        return display.lakehouse_html(self)


class Transaction:
    """See `Lakehouse.transaction`."""

    def __init__(self, lakehouse: Lakehouse, ref: str, properties: dict[str, str]) -> None:
        self._lakehouse = lakehouse
        self.ref = ref
        self._properties = properties
        #: The private branch, named when the transaction starts.
        self.branch = ""
        #: Set when the transaction committed.
        self.result: RefMergeResult | None = None

    def table(self, name: str) -> Table:
        """The table as this transaction sees it; writes stay private until the commit."""
        return self._lakehouse.table(name, ref=self.branch)

    def create_table(
        self,
        name: str,
        schema: Any,
        *,
        partition_by: PartitionBy | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> Table:
        """Creates a table that appears on the target, with this transaction's writes, only if
        the transaction commits."""
        return self._lakehouse.create_table(
            name, schema, partition_by=partition_by, properties=properties, ref=self.branch
        )

    def __enter__(self) -> Transaction:
        self.branch = self._lakehouse._native.create_internal_branch("tx/", self.ref)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None:
            # Nothing of the block lands: its branch goes, with every file its writes left.
            self._lakehouse._native.discard_transaction(self.branch)
            return
        try:
            self.result = self._lakehouse.merge(
                self.branch, into=self.ref, properties=self._properties
            )
        except CommitStateUnknownError:
            # It may have landed: its files stay.
            self._lakehouse.delete_branch(self.branch)
            raise
        except BaseException:
            self._lakehouse._native.discard_transaction(self.branch)
            raise
        self._lakehouse.delete_branch(self.branch)


class Table:
    """An Iceberg table in a `Lakehouse`. Every property reads the table's current metadata."""

    def __init__(
        self,
        native: _native.NativeLakehouse,
        name: str,
        ref: str = "main",
        *,
        pinned: tuple[AsOf, int] | None = None,
    ) -> None:
        self._native = native
        self.name = name
        #: The catalog branch or tag this table is read from and written to.
        self.ref = ref
        #: The point in time a read-only table was opened at (``lh.table(..., as_of=...)``).
        self.as_of = pinned[0] if pinned else None
        self._snapshot_id = pinned[1] if pinned else None

    def _writable(self) -> None:
        if self.as_of is not None:
            raise InputError(
                f"{self.name} was opened as of {self.as_of!r} and is read-only; "
                "open it without as_of to write"
            )

    def _metadata(self) -> tuple[str, dict[str, Any], Any]:
        location, metadata_json, schema = self._native.table_metadata(self.name, self.ref)
        return location, json.loads(metadata_json), schema

    @property
    def schema(self) -> pa.Schema:
        """The current schema as Arrow (fields carry their Iceberg ids in metadata)."""
        # Not `_metadata()`: the schema needs no parse of the whole metadata JSON.
        return pa.schema(self._native.table_metadata(self.name, self.ref)[2])

    @property
    def metadata_location(self) -> str:
        return self._metadata()[0]

    @property
    def current_snapshot_id(self) -> int | None:
        """The snapshot reads see (for a table opened `as_of`, the one of that time)."""
        if self.as_of is not None:
            return self._snapshot_id
        snapshot_id = self._metadata()[1].get("current-snapshot-id")
        return None if snapshot_id is None or snapshot_id == -1 else int(snapshot_id)

    @property
    def partition_spec(self) -> list[PartitionField]:
        _, metadata, _ = self._metadata()
        schema = next(
            s for s in metadata["schemas"] if s["schema-id"] == metadata["current-schema-id"]
        )
        columns = {f["id"]: f["name"] for f in schema["fields"]}
        spec = next(
            s for s in metadata["partition-specs"] if s["spec-id"] == metadata["default-spec-id"]
        )
        return [
            PartitionField(f["name"], columns.get(f["source-id"], "?"), f["transform"])
            for f in spec["fields"]
        ]

    def history(self) -> list[Snapshot]:
        """The ref's snapshots, oldest first, with their summaries (operation, added/total
        counts…): its head (for a table opened `as_of`, the snapshot of that time) and the
        ancestors still retained. Snapshots the table's metadata holds for other lines — a
        table-level branch another engine writes, the snapshots a rollback left — are not the
        ref's history (`scan(snapshot_id=...)` still reads them)."""
        metadata = self._metadata()[1]
        by_id = {s["snapshot-id"]: s for s in metadata.get("snapshots", [])}
        lineage: list[dict[str, Any]] = []
        head = self._snapshot_id if self.as_of is not None else metadata.get("current-snapshot-id")
        current = by_id.get(head)
        while current is not None and len(lineage) < len(by_id):
            lineage.append(current)
            current = by_id.get(current.get("parent-snapshot-id"))
        return [
            Snapshot(
                snapshot_id=s["snapshot-id"],
                parent_id=s.get("parent-snapshot-id"),
                sequence_number=s.get("sequence-number", 0),
                timestamp=dt.datetime.fromtimestamp(s["timestamp-ms"] / 1000, dt.UTC),
                operation=s["summary"].get("operation", ""),
                summary=dict(s["summary"]),
            )
            for s in reversed(lineage)
        ]

    def append(
        self,
        data: Any,
        *,
        properties: Mapping[str, str] | None = None,
        message: str | None = None,
        author: str | None = None,
        validate: Any = None,
        schema_evolution: SchemaEvolution = "strict",
    ) -> AppendResult:
        """Appends Arrow-like `data` as one snapshot on this table's ref.

        With `validate` (a Pandera model or schema), the data is validated and coerced first
        (`phlo.validate`); a failure raises `ValidationError` and nothing is written. Data is
        then cast to the table schema within a kind of type (integers, floats, strings,
        timestamps…); a column that does not fit raises `SchemaError` and nothing is
        committed. ``schema_evolution="evolve"`` first adds the data's new columns (nullable)
        and promotes int→long / float→double; ``"strict"`` never changes the schema.
        `properties` are added to the snapshot summary; `message` and `author` are recorded
        in the log (and the summary, as ``phlo.message`` / ``phlo.author``)."""
        self._writable()
        data = _validated(data, validate)
        properties = _commit_properties(properties, message, author)
        result = self._native.append(
            self.name,
            as_arrow(data),
            self.ref,
            properties,
            _args.text("schema_evolution", schema_evolution),
        )
        return AppendResult(**result)

    def merge(
        self,
        data: Any,
        unique_key: str | Sequence[str],
        merge_strategy: MergeStrategy = "merge",
        merge_config: Mapping[str, Any] | None = None,
        *,
        properties: Mapping[str, str] | None = None,
        message: str | None = None,
        author: str | None = None,
        validate: Any = None,
        schema_evolution: SchemaEvolution = "strict",
        write_mode: WriteMode | None = None,
    ) -> MergeResult:
        """Merges Arrow-like `data` into the table as one atomic snapshot.

        ``merge_strategy="merge"`` upserts on `unique_key` (a column or a list of columns):
        table rows whose key is in the batch are replaced, the rest of the batch is inserted.
        ``"append"`` inserts. ``merge_config={"deduplication_method": "last"}`` (the default for
        merges; or ``"first"``, ``"hash"``) deduplicates the batch first, ``"order_by": column``
        makes "last" mean the greatest value of that column. Null keys raise `MergeError`.
        `validate` and `schema_evolution` work as for `append`. Replaced rows are removed as
        the table property ``write.merge.mode`` says, or `write_mode` for this call:
        ``"copy-on-write"`` (the default) rewrites their files, ``"merge-on-read"`` marks them
        in position-delete files, ``"auto"`` chooses per file (docs/merge.md).
        """
        self._writable()
        data = _validated(data, validate)
        properties = _commit_properties(properties, message, author)
        return merge_into(
            self,
            data,
            unique_key,
            merge_strategy,
            merge_config,
            properties=properties,
            schema_evolution=schema_evolution,
            write_mode=write_mode,
        )

    def delete_stats(self) -> DeleteStats:
        """Data and delete files of the head and the read amplification they cause (see
        `DeleteStats`), read from the snapshot summary's totals (no file is opened)."""
        snapshot_id = self.current_snapshot_id
        summary = next((s.summary for s in self.history() if s.snapshot_id == snapshot_id), {})

        def total(key: str) -> int:
            return int(summary.get(key, "0"))

        return DeleteStats(
            data_files=total("total-data-files"),
            delete_files=total("total-delete-files"),
            rows=total("total-records"),
            deleted_rows=total("total-position-deletes"),
        )

    @property
    def properties(self) -> dict[str, str]:
        """The table's properties (Iceberg's and phlo's), as its metadata holds them."""
        return dict(self._metadata()[1].get("properties", {}))

    def set_properties(self, properties: Mapping[str, str | None]) -> bool:
        """Sets table properties in one metadata-only commit (no snapshot, no file touched);
        a value of None removes the property. E.g. ``{"write.merge.mode": "merge-on-read"}``.
        A write mode other than ``copy-on-write``, ``merge-on-read`` or ``auto``, or a
        ``write.parquet.dict-size-bytes`` that is not a positive byte count, raises
        `InputError` and nothing changes. ``{"format-version": "2"}`` upgrades a format v1 table
        (which phlo reads but does not write) to v2. Returns whether anything changed."""
        self._writable()
        if not isinstance(properties, Mapping):
            raise InputError(f"properties must be a mapping, not {properties!r}")
        updates: list[tuple[str, str | None]] = []
        for key, value in properties.items():
            if not isinstance(key, str) or not (value is None or isinstance(value, str)):
                raise InputError(
                    f"properties must map strings to strings or None; {key!r}: {value!r} "
                    "does not (convert the value with str())"
                )
            updates.append((key, value))
        return self._native.set_properties(self.name, self.ref, updates)

    def compact(
        self,
        target_file_size: int | None = None,
        filter: Filter | Sequence[Filter] | None = None,
        *,
        properties: Mapping[str, str] | None = None,
        message: str | None = None,
        author: str | None = None,
    ) -> CompactResult:
        """Rewrites small data files into files of about `target_file_size` bytes (default:
        the table's ``write.target-file-size-bytes``, else 256 MiB, as its writers use), as one ``replace`` snapshot with the same rows.

        Per partition, files below 3/4 of the target are concatenated in the order they were
        committed (row order is kept) into consecutive runs of up to the target; a partition
        with a single small file is left alone. `filter` (as for `scan`) limits it to files
        that may hold matching rows, e.g. recent partitions. Files are read by Iceberg field
        id, so renamed and dropped columns are handled. A concurrent append is kept; if a
        concurrent write removed a file being compacted, `CommitConflictError` is raised and
        the table is unchanged. Refused on a tag and on a table opened `as_of`."""
        self._writable()
        result = self._native.compact(
            self.name,
            self.ref,
            target_file_size,
            normalize_filters(filter),
            _commit_properties(properties, message, author),
        )
        return CompactResult(**result)

    def scan(
        self,
        columns: Sequence[str] | None = None,
        filter: Filter | Sequence[Filter] | None = None,
        *,
        snapshot_id: int | None = None,
        as_of: dt.datetime | int | str | None = None,
        batch_size: int | None = None,
        string_dictionaries: bool = False,
    ) -> Scan:
        """Plans a read. `filter` is one ``(column, op, value)`` tuple or a list of them
        (ANDed); ops: = != < <= > >= in, not in, between, is null, is not null. Files whose
        partition or column ranges cannot match are skipped. `as_of` reads the table as it was
        at a time (datetime, ISO string, or ms since epoch). `string_dictionaries` reads the
        string columns the filter does not name as ``dictionary<int32, string>``, keeping the
        dictionaries of dictionary-encoded files (no string copies)."""
        if snapshot_id is not None and as_of is not None:
            raise InputError("give snapshot_id or as_of, not both")
        if self.as_of is not None and snapshot_id is None and as_of is None:
            snapshot_id = self._snapshot_id
        names = _args.columns("columns", columns) if columns is not None else None
        filters = normalize_filters(filter)
        dictionaries = _args.flag("string_dictionaries", string_dictionaries)
        native = self._native.scan(
            self.name,
            names,
            filters,
            _args.optional_integer("snapshot_id", snapshot_id),
            _as_of_ms(as_of),
            self.ref,
            _args.optional_integer("batch_size", batch_size, minimum=1),
            dictionaries,
        )

        def replan(size: int) -> _native.NativeScan:
            return self._native.scan(
                self.name, names, filters, native.snapshot_id, None, self.ref, size, dictionaries
            )

        return Scan(native, replan)

    def delete(
        self,
        filter: Filter | Sequence[Filter],
        *,
        properties: Mapping[str, str] | None = None,
        message: str | None = None,
        author: str | None = None,
        write_mode: WriteMode | None = None,
    ) -> DeleteResult:
        """Deletes the rows matching `filter` (the forms `scan` accepts, ANDed) as one
        snapshot on this table's branch, copy-on-write unless the table property
        ``write.delete.mode`` or `write_mode` says ``"merge-on-read"`` (matching rows are
        marked in position-delete files) or ``"auto"`` (per file; docs/merge.md): files whose partition values or column
        ranges prove every row matches are dropped unread, files that cannot match are left
        alone, the others are rewritten without the matching rows. A row where the filter is
        null (``x != 1`` with ``x`` null) is kept. Deleting nothing commits nothing
        (``snapshot_id=None``). A concurrent write that added rows the filter may match makes
        it fail with `CommitConflictError`; a tag is refused. `message` (default: the filter),
        `author` and `properties` are recorded as for `append`."""
        self._writable()
        filters = normalize_filters(filter)
        properties = _commit_properties(properties, message, author)
        mode = _args.optional_text("write_mode", write_mode)
        return DeleteResult(**self._native.delete(self.name, filters, self.ref, properties, mode))

    def changes(
        self,
        from_snapshot: int | None,
        to_snapshot: int | None = None,
        *,
        batch_size: int | None = None,
    ) -> Scan:
        """The rows appended after snapshot `from_snapshot` (exclusive; None: since the table
        was created) up to `to_snapshot` (inclusive; default: the ref's head), as a `Scan`.
        Only the data files those appends added are read, in the table's current schema (by
        field id, so renamed columns read under their new names). A snapshot in the range that
        removed rows (a delete, an upsert, an overwrite) raises `InputError` naming it;
        compactions are passed over. Unknown or expired snapshots, and a `from_snapshot` that
        is not an ancestor of `to_snapshot`, raise `InputError`. On a table opened `as_of`,
        `to_snapshot` defaults to the snapshot of that time."""
        if to_snapshot is None:
            to_snapshot = self._snapshot_id
        native = self._native.changes(self.name, self.ref, from_snapshot, to_snapshot, batch_size)

        def replan(size: int) -> _native.NativeScan:
            until = native.snapshot_id if to_snapshot is None else to_snapshot
            return self._native.changes(self.name, self.ref, from_snapshot, until, size)

        return Scan(native, replan)

    def to_arrow(self) -> pa.Table:
        return self.scan().to_arrow()

    def head(
        self,
        n: int = 5,
        columns: Sequence[str] | None = None,
        filter: Filter | Sequence[Filter] | None = None,
    ) -> pa.Table:
        """The first `n` rows (of the `columns` and `filter` given, as for `scan`) as an Arrow
        table; only the batches that hold them are read."""
        n = _args.integer("n", n, minimum=0)
        return self.scan(columns, filter, batch_size=max(n, 1))._take(n)

    def __repr__(self) -> str:
        return display.table_text(self)

    def _repr_html_(self) -> str:
        return display.table_html(self)


class Scan:
    """A planned scan: pruning statistics, then the rows as an Arrow stream (read once)."""

    def __init__(
        self, native: _native.NativeScan, replan: Callable[[int], _native.NativeScan]
    ) -> None:
        self._native = native
        #: Plans the same scan again (same snapshot, the given batch size), for previews.
        self._replan = replan

    @property
    def files_total(self) -> int:
        """Data files in the snapshot read."""
        return self._native.files_total

    @property
    def files_scanned(self) -> int:
        """Data files left to read after partition and min/max pruning."""
        return self._native.files_scanned

    @property
    def manifests_total(self) -> int:
        """Data manifests of the snapshot read."""
        return self._native.manifests_total

    @property
    def manifests_scanned(self) -> int:
        """Data manifests planning read: the others' partition summaries ruled the filter out."""
        return self._native.manifests_scanned

    @property
    def data_files(self) -> list[str]:
        """The data files this scan reads (those left after pruning)."""
        return [path for path, _, _ in self._native.data_files]

    @property
    def snapshot_id(self) -> int | None:
        return self._native.snapshot_id

    @property
    def schema(self) -> pa.Schema:
        return pa.schema(self._native.schema)

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The raw stream for Arrow consumers (polars, DuckDB…): an engine failure reaches
        them as their own error with phlo's message; `to_reader` & co. raise phlo's type."""
        return self._native.reader().__arrow_c_stream__(requested_schema)

    def select(self, columns: Sequence[str] | None) -> Scan:
        """The same scan (snapshot, files, filter: not planned again) reading only `columns`
        (None: all of them); this scan stays unread."""
        names = _args.columns("columns", columns) if columns is not None else self.schema.names
        return Scan(self._native.select(names), lambda size: self._replan(size).select(names))

    def to_reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self.to_batches())

    def to_batches(self) -> Iterator[pa.RecordBatch]:
        """The batches as they are read; an engine failure raises its `phlo.errors` type."""
        stream = pa.RecordBatchReader.from_stream(self._native.reader())
        try:
            yield from stream
        except pa.ArrowException:
            self._native.raise_error()
            raise

    def to_arrow(self) -> pa.Table:
        return self.to_reader().read_all()

    def head(self, n: int = 5) -> pa.Table:
        """The first `n` rows, read from a fresh plan of the same snapshot: only the batches
        holding them are read, and this scan stays unread."""
        n = _args.integer("n", n, minimum=0)
        return Scan(self._replan(max(n, 1)), self._replan)._take(n)

    def _take(self, n: int) -> pa.Table:
        """This scan's first `n` rows; reading stops there (the scan is used up)."""
        batches, rows = [], 0
        for batch in self.to_batches() if n else ():
            batches.append(batch.slice(0, n - rows))
            rows += batches[-1].num_rows
            if rows >= n:
                break
        return pa.Table.from_batches(batches, self.schema)

    def __repr__(self) -> str:
        return display.scan_text(self)

    def _repr_html_(self) -> str:
        return display.scan_html(self)

    def to_polars(self) -> polars.DataFrame:
        require("polars", "to_polars()")
        import polars

        result = polars.from_arrow(self.to_arrow())
        assert isinstance(result, polars.DataFrame)
        return result

    def to_pandas(self) -> pandas.DataFrame:
        return self.to_arrow().to_pandas()


def _partition_pairs(partition_by: PartitionBy | None) -> list[tuple[str, str]]:
    pairs = []
    if isinstance(partition_by, str):
        partition_by = [partition_by]
    if partition_by is not None and not isinstance(partition_by, Sequence):
        raise InputError(f"partition_by must be a list of fields, not {partition_by!r}")
    for item in partition_by or []:
        if isinstance(item, tuple) and len(item) == 2:
            pairs.append((str(item[0]), str(item[1])))
        elif isinstance(item, str) and item.endswith(")") and "(" in item:
            transform, column = item[:-1].split("(", 1)
            if "," in column:  # bucket(16, id) / truncate(4, name)
                width, column = (p.strip() for p in column.split(",", 1))
                transform = f"{transform}[{width}]"
            pairs.append((column.strip(), transform.strip()))
        elif isinstance(item, str):
            pairs.append((item, "identity"))
        else:
            raise InputError(
                f"invalid partition field {item!r}; use ('ts', 'day'), 'day(ts)' or 'region'"
            )
    return pairs


def _as_of_ms(as_of: dt.datetime | int | str | None) -> int | None:
    if as_of is None or isinstance(as_of, int):
        return _args.optional_integer("as_of", as_of)
    if isinstance(as_of, str):
        try:
            as_of = dt.datetime.fromisoformat(as_of)
        except ValueError as exc:
            raise InputError(f"as_of {as_of!r} is not an ISO timestamp") from exc
    if isinstance(as_of, dt.datetime):
        if as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=dt.UTC)
        return timestamp_micros(as_of) // 1000
    raise InputError(f"as_of must be a datetime, ISO string or ms since epoch, not {as_of!r}")


def _validated(data: Any, schema: Any) -> Any:
    if schema is None:
        return data
    from phlo.validation import validate

    return validate(data, schema)


def _commit_properties(
    properties: Mapping[str, str] | None, message: str | None, author: str | None
) -> dict[str, str]:
    """Properties of a change, with `message` and `author` under the keys the log reads."""
    out = _args.string_map("properties", properties)
    if message is not None:
        out["phlo.message"] = _args.text("message", message)
    if author is not None:
        out["phlo.author"] = _args.text("author", author)
    return out


def _new_ref(kind: str, name: Any) -> str:
    """The name of a branch or tag to create (`main` always exists)."""
    checked = _args.text("name", name)
    if checked == "main":
        raise InputError(f"main already exists; pick another name for the {kind}")
    return checked


def _commit_or_time(as_of: AsOf) -> tuple[str | None, int | None]:
    """`(commit_id, None)` for a commit of the log, `(None, ms)` for a point in time."""
    if isinstance(as_of, LogEntry):
        return as_of.commit_id, None
    if isinstance(as_of, str):
        try:
            dt.datetime.fromisoformat(as_of)
        except ValueError:
            return as_of, None
    return None, _as_of_ms(as_of)


def _cutoff_ms(older_than: dt.datetime | dt.timedelta) -> int:
    """A maintenance cutoff (a time, or an age before now) in ms since the epoch."""
    if isinstance(older_than, dt.timedelta):
        older_than = dt.datetime.now(dt.UTC) - older_than
    if not isinstance(older_than, dt.datetime):
        raise InputError(f"older_than must be a datetime or a timedelta, not {older_than!r}")
    if older_than.tzinfo is None:
        older_than = older_than.replace(tzinfo=dt.UTC)
    return timestamp_micros(older_than) // 1000
