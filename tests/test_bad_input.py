"""Bad input, tried the way a new user would, across every public call: each case raises
exactly the `phlo.errors` class it should, with a message naming the offending thing, and
leaves the lakehouse as it was (tables, refs, metadata locations, snapshots, rows, log)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandera.pandas as pdx
import pyarrow as pa
import pytest
from click.testing import CliRunner
from tests.conftest import EVENTS_SCHEMA, make_events

import phlo
from phlo import errors
from phlo.cli import main as cli

E = errors
#: A batch of new rows that fits raw.events.
NEW = make_events(100, 3)
#: The schema of a table that bad calls try to create.
ID = {"id": pa.int64()}


@pytest.fixture
def world(lh: phlo.Lakehouse) -> phlo.Lakehouse:
    """raw.events (partitioned by day) with 12 rows on main, tag v1 and branch dev."""
    lh.create_table("raw.events", EVENTS_SCHEMA, partition_by=[("ts", "day")])
    lh.table("raw.events").append(make_events(0, 12))
    lh.create_tag("v1")
    lh.create_branch("dev")
    return lh


def fingerprint(lh: phlo.Lakehouse) -> dict[str, Any]:
    """Everything a failed call must leave as it was."""
    state: dict[str, Any] = {
        "namespaces": lh.namespaces(),
        "branches": lh.branches(),
        "tags": lh.tags(),
        "log": [e.commit_id for e in lh.log(limit=1000)],
    }
    for ref in [*lh.branches(), *lh.tags()]:
        for name in lh.tables("raw"):
            try:
                table = lh.table(name, ref)
            except errors.NoSuchTableError:
                continue
            state[f"{name}@{ref}"] = (
                table.metadata_location,
                table.current_snapshot_id,
                table.to_arrow().sort_by("id").to_pylist(),
            )
    return state


def events(lh: phlo.Lakehouse, ref: str = "main") -> phlo.Table:
    return lh.table("raw.events", ref)


def duplicate_id() -> pa.Table:
    return pa.Table.from_arrays([pa.array([1, 2]), pa.array([3, 4])], names=["id", "id"])


class Schema(pdx.DataFrameModel):
    id: int


Case = Callable[[phlo.Lakehouse], object]


def case(id: str, error: type[errors.PhloError], needle: str, call: Case) -> Any:
    """One bad call: the exact error class it raises and text its message must hold."""
    return pytest.param(call, error, needle, id=id)


# fmt: off
NAMES = [
    case("name-empty", E.InputError, '""', lambda lh: lh.create_table("", ID)),
    case("name-no-namespace", E.InputError, '"events"', lambda lh: lh.create_table("events", ID)),
    case("name-trailing-dot", E.InputError, "table name", lambda lh: lh.create_table("raw.", ID)),
    case("name-double-dot", E.InputError, "namespace name", lambda lh: lh.create_table("raw..events", ID)),
    case("name-control-char", E.InputError, "ev\\u{7}", lambda lh: lh.create_table("raw.ev\u0007", ID)),
    case("name-zero-width-space", E.InputError, "ev\\u{200b}", lambda lh: lh.create_table("raw.ev\u200b", ID)),
    case("name-too-long", E.InputError, "x" * 40, lambda lh: lh.create_table("raw." + "x" * 256, ID)),
    case("name-slash", E.InputError, "raw/x", lambda lh: lh.create_table("raw/x.events", ID)),
    case("name-parent-dir", E.InputError, "namespace name", lambda lh: lh.create_table("../etc.passwd", ID)),
    case("name-space", E.InputError, '"a b"', lambda lh: lh.create_table("raw.a b", ID)),
    case("name-int", E.InputError, "name must be a string", lambda lh: lh.create_table(5, ID)),
    case("namespace-missing", E.NoSuchNamespaceError, "missing", lambda lh: lh.create_table("missing.t", ID)),
    case("table-exists", E.TableAlreadyExistsError, "raw.events", lambda lh: lh.create_table("raw.events", ID)),
    case("open-missing", E.NoSuchTableError, "raw.nope", lambda lh: lh.table("raw.nope")),
    case("open-none", E.InputError, "name must be a string", lambda lh: lh.table(None)),
    case("open-nul", E.InputError, "ev\\0", lambda lh: lh.table("raw.ev\x00")),
    case("drop-missing", E.NoSuchTableError, "raw.nope", lambda lh: lh.drop_table("raw.nope")),
    case("drop-purge-str", E.InputError, "purge", lambda lh: lh.drop_table("raw.events", purge="yes")),
    case("ns-empty", E.InputError, '""', lambda lh: lh.create_namespace("")),
    case("ns-space", E.InputError, '"a b"', lambda lh: lh.create_namespace("a b")),
    case("ns-too-long", E.InputError, "n" * 40, lambda lh: lh.create_namespace("n" * 300)),
    case("ns-int", E.InputError, "namespace must be a string", lambda lh: lh.create_namespace(5)),
    case("ns-exists", E.NamespaceAlreadyExistsError, "raw", lambda lh: lh.create_namespace("raw")),
    case("ns-drop-missing", E.NoSuchNamespaceError, "nope", lambda lh: lh.drop_namespace("nope")),
    case("ns-drop-not-empty", E.NamespaceNotEmptyError, "raw", lambda lh: lh.drop_namespace("raw")),
    case("ns-tables-missing", E.NoSuchNamespaceError, "nope", lambda lh: lh.tables("nope")),
    case("ns-exist-ok-str", E.InputError, "exist_ok", lambda lh: lh.create_namespace("raw", exist_ok="no")),
    case("open-root-int", E.InputError, "root must be a path", lambda lh: phlo.Lakehouse.open(5)),
    case("ns-tables-int", E.InputError, "namespace must be a string", lambda lh: lh.tables(3)),
]

SCHEMAS = [
    case("schema-uint64", E.SchemaError, "big", lambda lh: lh.create_table("raw.t", {"big": pa.uint64()})),
    case("schema-empty", E.SchemaError, "no columns", lambda lh: lh.create_table("raw.t", {})),
    case("schema-bad-type-alias", E.InputError, "nope", lambda lh: lh.create_table("raw.t", {"a": "nope"})),
    case("schema-none", E.InputError, "NoneType", lambda lh: lh.create_table("raw.t", None)),
    case("schema-duplicate", E.SchemaError, "id appears twice", lambda lh: lh.create_table("raw.t", pa.schema([("id", pa.int64()), ("id", pa.string())]))),
    case("schema-duplicate-struct-field", E.SchemaError, "s.a appears twice", lambda lh: lh.create_table("raw.t", pa.schema([("s", pa.struct([("a", pa.int64()), ("a", pa.int64())]))]))),
    case("schema-dotted-name-clash", E.SchemaError, "s.a appears twice", lambda lh: lh.create_table("raw.t", pa.schema([("s", pa.struct([("a", pa.int64())])), ("s.a", pa.int64())]))),
    case("schema-empty-column-name", E.SchemaError, "empty name", lambda lh: lh.create_table("raw.t", {"": pa.int64()})),
    case("schema-control-char-column", E.SchemaError, "a\\nb", lambda lh: lh.create_table("raw.t", {"a\nb": pa.int64()})),
    case("create-properties-int", E.InputError, "'a': 1", lambda lh: lh.create_table("raw.t", ID, properties={"a": 1})),
    case("create-properties-list", E.InputError, "properties must be a mapping", lambda lh: lh.create_table("raw.t", ID, properties=["a"])),
    case("create-on-tag", E.InputError, "v1 is a tag", lambda lh: lh.create_table("raw.t", ID, ref="v1")),
    case("create-on-missing-ref", E.InputError, "nope", lambda lh: lh.create_table("raw.t", ID, ref="nope")),
    case("create-ref-int", E.InputError, "ref must be a string", lambda lh: lh.create_table("raw.t", ID, ref=1)),
]

PARTITION_SCHEMA = {
    "id": pa.int64(),
    "category": pa.string(),
    "value": pa.float64(),
    "ts": pa.timestamp("us"),
    "day": pa.date32(),
    "tags": pa.list_(pa.string()),
    "point": pa.struct([("x", pa.int64())]),
}


def partitioned(*partition_by: Any) -> Case:
    return lambda lh: lh.create_table("raw.p", PARTITION_SCHEMA, partition_by=list(partition_by))


PARTITIONS = [
    case("bucket-zero", E.InputError, "bucket[0]", partitioned("bucket(0, id)")),
    case("bucket-negative", E.InputError, "-3", partitioned("bucket(-3, id)")),
    case("bucket-not-a-number", E.InputError, '"x"', partitioned("bucket(x, id)")),
    case("bucket-too-big", E.InputError, "2147483648", partitioned("bucket(2147483648, id)")),
    case("bucket-no-brackets", E.InputError, "bucket16", partitioned(("id", "bucket16"))),
    case("bucket-no-count", E.InputError, "bucket(N, column)", partitioned(("id", "bucket"))),
    case("truncate-zero", E.InputError, "truncate[0]", partitioned("truncate(0, category)")),
    case("truncate-fraction", E.InputError, "1.5", partitioned("truncate(1.5, category)")),
    case("year-on-string", E.InputError, "year(category)", partitioned("year(category)")),
    case("day-on-double", E.InputError, "day(value)", partitioned("day(value)")),
    case("hour-on-date", E.InputError, "hour(day)", partitioned("hour(day)")),
    case("bucket-on-double", E.InputError, "double", partitioned("bucket(4, value)")),
    case("truncate-on-timestamp", E.InputError, "timestamp", partitioned("truncate(4, ts)")),
    case("identity-on-struct", E.InputError, "point", partitioned("point")),
    case("inside-a-list", E.InputError, "inside a list", partitioned("tags.element")),
    case("unknown-transform", E.InputError, "weekly", partitioned(("id", "weekly"))),
    case("void-transform", E.InputError, "void", partitioned(("id", "void"))),
    case("missing-column", E.InputError, "nope", partitioned("day(nope)")),
    case("same-field-twice", E.InputError, "category is given twice", partitioned("category", "category")),
    case("two-time-transforms", E.InputError, "by time twice", partitioned("day(ts)", "hour(ts)")),
    case("not-a-list", E.InputError, "partition_by must be a list", lambda lh: lh.create_table("raw.p", PARTITION_SCHEMA, partition_by=5)),
    case("create-exist-ok-str", E.InputError, "exist_ok", lambda lh: lh.create_table("raw.events", EVENTS_SCHEMA, exist_ok="no")),
    case("not-a-field", E.InputError, "3", partitioned(3)),
    case("name-clashes-with-column", E.InputError, "ts_day", lambda lh: lh.create_table("raw.p", {"ts": pa.timestamp("us"), "ts_day": pa.date32()}, partition_by=["day(ts)"])),
]

WRITES = [
    case("append-duplicate-columns", E.SchemaError, "id appears twice", lambda lh: events(lh).append(duplicate_id())),
    case("append-evolve-duplicate-columns", E.SchemaError, "id appears twice", lambda lh: events(lh).append(duplicate_id(), schema_evolution="evolve")),
    case("append-wrong-type", E.SchemaError, "id", lambda lh: events(lh).append(NEW.set_column(0, "id", pa.array(["1", "2", "x"])))),
    case("append-extra-column", E.SchemaError, "surprise", lambda lh: events(lh).append(NEW.append_column("surprise", pa.array([1, 2, 3])))),
    case("append-missing-required", E.SchemaError, "required", lambda lh: events(lh).append(NEW.drop_columns(["id"]))),
    case("append-int", E.InputError, "int", lambda lh: events(lh).append(42)),
    case("append-none", E.InputError, "NoneType", lambda lh: events(lh).append(None)),
    case("append-empty-list", E.EmptyInputError, "no rows", lambda lh: events(lh).append([])),
    case("append-zero-rows", E.EmptyInputError, "raw.events", lambda lh: events(lh).append(NEW.slice(0, 0))),
    case("append-properties-int", E.InputError, "'k': 1", lambda lh: events(lh).append(NEW, properties={"k": 1})),
    case("append-message-int", E.InputError, "message", lambda lh: events(lh).append(NEW, message=5)),
    case("append-author-list", E.InputError, "author", lambda lh: events(lh).append(NEW, author=["me"])),
    case("append-evolution-unknown", E.InputError, "maybe", lambda lh: events(lh).append(NEW, schema_evolution="maybe")),
    case("append-evolution-int", E.InputError, "schema_evolution", lambda lh: events(lh).append(NEW, schema_evolution=1)),
    case("append-validate-not-a-schema", E.SchemaError, "5 is not a Pandera", lambda lh: events(lh).append(NEW, validate=5)),
    case("append-tag", E.InputError, "v1 is a tag", lambda lh: events(lh, "v1").append(NEW)),
    case("append-as-of", E.InputError, "read-only", lambda lh: lh.table("raw.events", as_of=dt.datetime(2100, 1, 1)).append(NEW)),
]


def merge(lh: phlo.Lakehouse, data: Any = NEW, key: Any = "id", **kw: Any) -> Any:
    return events(lh).merge(data, key, **kw)


MERGES = [
    case("merge-unknown-strategy", E.InputError, "upsert", lambda lh: merge(lh, merge_strategy="upsert")),
    case("merge-unknown-method", E.InputError, "middle", lambda lh: merge(lh, merge_config={"deduplication_method": "middle"})),
    case("merge-order-by-missing-column", E.SchemaError, "nope", lambda lh: merge(lh, merge_config={"order_by": "nope"})),
    case("merge-order-by-int", E.InputError, "order_by", lambda lh: merge(lh, merge_config={"order_by": 5})),
    case("merge-unknown-config", E.InputError, "bogus", lambda lh: merge(lh, merge_config={"bogus": 1})),
    case("merge-config-list", E.InputError, "merge_config", lambda lh: merge(lh, merge_config=[1])),
    case("merge-key-empty", E.InputError, "unique_key is empty", lambda lh: merge(lh, key=[])),
    case("merge-key-blank", E.InputError, "empty column name", lambda lh: merge(lh, key="")),
    case("merge-key-missing", E.SchemaError, "nope", lambda lh: merge(lh, key="nope")),
    case("merge-key-int", E.InputError, "unique_key", lambda lh: merge(lh, key=5)),
    case("merge-key-twice", E.InputError, "id twice", lambda lh: merge(lh, key=["id", "id"])),
    case("merge-null-key", E.MergeError, "null", lambda lh: merge(lh, data=NEW.set_column(2, "category", pa.array(["a", None, "b"])), key="category")),
    case("merge-duplicate-columns", E.SchemaError, "id appears twice", lambda lh: merge(lh, data=duplicate_id())),
    case("merge-tag", E.InputError, "v1 is a tag", lambda lh: events(lh, "v1").merge(NEW, "id")),
    case("merge-to-iceberg-no-table", E.InputError, "phlo Table", lambda lh: phlo.merge_to_iceberg(None, NEW, "id")),
    case("merge-to-iceberg-strategy", E.InputError, '"x"', lambda lh: phlo.merge_to_iceberg(events(lh), NEW, "id", strategy="x")),
    case("merge-to-iceberg-method", E.InputError, "mid", lambda lh: phlo.merge_to_iceberg(events(lh), NEW, "id", deduplication_method="mid")),
    case("dedupe-key-missing", E.SchemaError, "nope", lambda lh: phlo.dedupe(NEW, "nope")),
    case("dedupe-key-empty", E.InputError, "unique_key is empty", lambda lh: phlo.dedupe(NEW, [])),
    case("dedupe-unknown-method", E.InputError, '"x"', lambda lh: phlo.dedupe(NEW, "id", method="x")),
    case("dedupe-duplicate-columns", E.SchemaError, "id appears twice", lambda lh: phlo.dedupe(duplicate_id(), "id")),
]


def scan(lh: phlo.Lakehouse, **kw: Any) -> Any:
    return events(lh).scan(**kw).to_arrow()


SCANS = [
    case("filter-unknown-column", E.InputError, "nope", lambda lh: scan(lh, filter=("nope", "=", 1))),
    case("filter-string-on-long", E.InputError, "long", lambda lh: scan(lh, filter=("id", "=", "x"))),
    case("filter-int-on-string", E.InputError, "string", lambda lh: scan(lh, filter=("category", "=", 1))),
    case("filter-text-on-timestamp", E.InputError, "timestamp", lambda lh: scan(lh, filter=("ts", "=", "yesterday"))),
    case("filter-date-on-long", E.InputError, "long", lambda lh: scan(lh, filter=("id", "=", dt.date(2024, 1, 1)))),
    case("filter-unknown-operator", E.InputError, '"~"', lambda lh: scan(lh, filter=("id", "~", 1))),
    case("filter-in-scalar", E.InputError, "list of values", lambda lh: scan(lh, filter=("id", "in", 5))),
    case("filter-between-one", E.InputError, "2 value", lambda lh: scan(lh, filter=("id", "between", (1,)))),
    case("filter-no-value", E.InputError, "needs a value", lambda lh: scan(lh, filter=("id", "="))),
    case("filter-none-value", E.InputError, "None", lambda lh: scan(lh, filter=("id", "=", None))),
    case("filter-object-value", E.InputError, "object", lambda lh: scan(lh, filter=("id", "=", object()))),
    case("filter-sql-string", E.InputError, "invalid filter", lambda lh: scan(lh, filter="id = 1")),
    case("columns-unknown", E.InputError, "nope", lambda lh: scan(lh, columns=["nope"])),
    case("columns-empty", E.InputError, "columns is empty", lambda lh: scan(lh, columns=[])),
    case("columns-twice", E.InputError, "id twice", lambda lh: scan(lh, columns=["id", "id"])),
    case("columns-int", E.InputError, "columns", lambda lh: scan(lh, columns=[1])),
    case("snapshot-unknown", E.InputError, "snapshot 1", lambda lh: scan(lh, snapshot_id=1)),
    case("snapshot-str", E.InputError, "snapshot_id", lambda lh: scan(lh, snapshot_id="x")),
    case("snapshot-bool", E.InputError, "snapshot_id", lambda lh: scan(lh, snapshot_id=True)),
    case("snapshot-overflow", E.InputError, "snapshot_id", lambda lh: scan(lh, snapshot_id=2**70)),
    case("batch-size-zero", E.InputError, "batch_size", lambda lh: scan(lh, batch_size=0)),
    case("batch-size-negative", E.InputError, "batch_size", lambda lh: scan(lh, batch_size=-1)),
    case("batch-size-float", E.InputError, "batch_size", lambda lh: scan(lh, batch_size=1.5)),
    case("snapshot-and-as-of", E.InputError, "not both", lambda lh: scan(lh, snapshot_id=1, as_of=dt.datetime(2024, 1, 1))),
]

TIME_TRAVEL = [
    case("as-of-before-first-snapshot", E.InputError, "no snapshot", lambda lh: lh.table("raw.events", as_of=dt.datetime(2000, 1, 1))),
    case("as-of-unknown-commit", E.InputError, "deadbeef", lambda lh: lh.table("raw.events", as_of="deadbeef")),
    case("as-of-float", E.InputError, "1.5", lambda lh: lh.table("raw.events", as_of=1.5)),
    case("as-of-overflow", E.InputError, "as_of", lambda lh: lh.table("raw.events", as_of=2**70)),
    case("scan-as-of-not-iso", E.InputError, "ISO", lambda lh: scan(lh, as_of="yesterday")),
    case("scan-as-of-before-first-snapshot", E.InputError, "no snapshot", lambda lh: scan(lh, as_of=dt.datetime(2000, 1, 1))),
    case("scan-as-of-list", E.InputError, "as_of", lambda lh: scan(lh, as_of=[1])),
]

REFS = [
    case("open-missing-ref", E.InputError, "nope", lambda lh: lh.table("raw.events", ref="nope")),
    case("open-ref-int", E.InputError, "ref must be a string", lambda lh: lh.table("raw.events", ref=3)),
    case("branch-empty", E.InputError, '""', lambda lh: lh.create_branch("")),
    case("branch-main", E.InputError, "main already exists", lambda lh: lh.create_branch("main")),
    case("branch-name-of-tag", E.InputError, "v1", lambda lh: lh.create_branch("v1")),
    case("branch-newline", E.InputError, "x\\n", lambda lh: lh.create_branch("x\n")),
    case("branch-int", E.InputError, "name must be a string", lambda lh: lh.create_branch(5)),
    case("branch-from-missing", E.InputError, "nope", lambda lh: lh.create_branch("b2", from_ref="nope")),
    case("tag-exists", E.InputError, "v1", lambda lh: lh.create_tag("v1")),
    case("tag-main", E.InputError, "main already exists", lambda lh: lh.create_tag("main")),
    case("tag-from-missing", E.InputError, "nope", lambda lh: lh.create_tag("v2", ref="nope")),
    case("delete-main", E.InputError, "main", lambda lh: lh.delete_branch("main")),
    case("delete-missing", E.InputError, "nope", lambda lh: lh.delete_branch("nope")),
    case("delete-tag", E.InputError, "v1 is a tag", lambda lh: lh.delete_branch("v1")),
    case("merge-missing-branch", E.InputError, "nope", lambda lh: lh.merge("nope")),
    case("merge-into-tag", E.InputError, "v1 is a tag", lambda lh: lh.merge("dev", into="v1")),
    case("merge-main", E.InputError, "main", lambda lh: lh.merge("main", into="main")),
    case("merge-message-int", E.InputError, "message", lambda lh: lh.merge("dev", message=3)),
    case("diff-missing-ref", E.InputError, "nope", lambda lh: lh.diff("main", "nope")),
    case("transaction-on-tag", E.InputError, "v1 is a tag", lambda lh: lh.transaction("v1")),
    case("transaction-missing-ref", E.InputError, "nope", lambda lh: lh.transaction("nope").__enter__()),
    case("transaction-properties-int", E.InputError, "'k': 1", lambda lh: lh.transaction(properties={"k": 1})),
    case("drop-on-tag", E.InputError, "v1 is a tag", lambda lh: lh.drop_table("raw.events", ref="v1")),
    case("log-negative-limit", E.InputError, "limit", lambda lh: lh.log(limit=-1)),
    case("log-limit-str", E.InputError, "limit", lambda lh: lh.log(limit="x")),
    case("log-ref-int", E.InputError, "ref must be a string", lambda lh: lh.log(ref=5)),
    case("diff-rows-no-key", E.InputError, "key is empty", lambda lh: lh.diff_rows("raw.events", "main", "dev", key=[])),
    case("diff-rows-key-missing", E.SchemaError, "nope", lambda lh: lh.diff_rows("raw.events", "main", "dev", key="nope")),
    case("diff-rows-negative-sample", E.InputError, "sample", lambda lh: lh.diff_rows("raw.events", "main", "dev", key="id", sample=-1)),
    case("diff-rows-missing-ref", E.InputError, "nope", lambda lh: lh.diff_rows("raw.events", "main", "nope", key="id")),
]

MAINTENANCE = [
    case("expire-keep-negative", E.InputError, "keep_last", lambda lh: lh.expire_snapshots(keep_last=-1)),
    case("expire-keep-zero", E.InputError, "keep_last", lambda lh: lh.expire_snapshots(keep_last=0)),
    case("expire-keep-str", E.InputError, "keep_last", lambda lh: lh.expire_snapshots(keep_last="x")),
    case("expire-keep-float", E.InputError, "keep_last", lambda lh: lh.expire_snapshots(keep_last=1.5)),
    case("expire-keep-bool", E.InputError, "keep_last", lambda lh: lh.expire_snapshots(keep_last=True)),
    case("expire-older-than-str", E.InputError, "older_than", lambda lh: lh.expire_snapshots(older_than="5d")),
    case("orphans-older-than-int", E.InputError, "older_than", lambda lh: lh.remove_orphan_files(older_than=3)),
    case("orphans-dry-run-str", E.InputError, "dry_run", lambda lh: lh.remove_orphan_files(dry_run="yes")),
]


def stage(lh: phlo.Lakehouse, data: Any = NEW, **kw: Any) -> Any:
    return phlo.stage(data, lh.root / "staging", **kw)


STAGING_AND_VALIDATION = [
    case("stage-rows-zero", E.InputError, "rows_per_file", lambda lh: stage(lh, rows_per_file=0)),
    case("stage-rows-negative", E.InputError, "rows_per_file", lambda lh: stage(lh, rows_per_file=-1)),
    case("stage-rows-str", E.InputError, "rows_per_file", lambda lh: stage(lh, rows_per_file="x")),
    case("stage-run-id-path", E.InputError, "../escape", lambda lh: stage(lh, run_id="../escape")),
    case("stage-run-id-empty", E.InputError, 'run_id ""', lambda lh: stage(lh, run_id="")),
    case("stage-run-id-int", E.InputError, "run_id", lambda lh: stage(lh, run_id=5)),
    case("stage-date-not-a-date", E.InputError, "yesterday", lambda lh: stage(lh, partition_date="yesterday")),
    case("stage-date-int", E.InputError, "partition_date", lambda lh: stage(lh, partition_date=5)),
    case("stage-directory-int", E.InputError, "directory", lambda lh: phlo.stage(NEW, 5)),
    case("stage-none", E.InputError, "NoneType", lambda lh: stage(lh, data=None)),
    case("stage-duplicate-columns", E.SchemaError, "id appears twice", lambda lh: stage(lh, data=duplicate_id())),
    case("stage-reserved-column", E.InputError, "_phlo_x", lambda lh: stage(lh, data=pa.table({"_phlo_x": [1]}))),
    case("stage-zero-rows", E.EmptyInputError, "no rows", lambda lh: stage(lh, data=NEW.slice(0, 0))),
    case("validate-no-schema", E.SchemaError, "None", lambda lh: phlo.validate(NEW, None)),
    case("validate-duplicate-columns", E.SchemaError, "id appears twice", lambda lh: phlo.validate(duplicate_id(), Schema)),
    case("validate-negative-cases", E.InputError, "max_failure_cases", lambda lh: phlo.validate(NEW, Schema, max_failure_cases=-1)),
    case("validate-lazy-str", E.InputError, "lazy", lambda lh: phlo.Validator(Schema).validate(NEW, lazy="yes")),
]
# fmt: on


@pytest.mark.parametrize(
    ("call", "error", "needle"),
    NAMES
    + SCHEMAS
    + PARTITIONS
    + WRITES
    + MERGES
    + SCANS
    + TIME_TRAVEL
    + REFS
    + MAINTENANCE
    + STAGING_AND_VALIDATION,
)
def test_bad_input(world: phlo.Lakehouse, call: Case, error: type, needle: str) -> None:
    before = fingerprint(world)
    with pytest.raises(errors.PhloError) as info:
        call(world)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    assert needle in str(info.value)
    assert fingerprint(world) == before


# Exit codes (docs/cli.md): 2 for usage errors, 4 for an operation the lakehouse refused.
CLI = [
    (["show", "raw.nope"], 4, "[no_such_table]"),
    (["show", "raw.events", "--ref", "nope"], 4, "[invalid_input] ref nope"),
    (["head", "raw.events", "-n", "-1"], 2, "-n"),
    (["head", "raw.events", "-n", "x"], 2, "-n"),
    (["head", "raw.events", "--snapshot", "1"], 4, "[invalid_input] snapshot 1"),
    (["head", "raw.events", "--snapshot", "x"], 2, "--snapshot"),
    (["head", "raw.events", "--as-of", "deadbeef"], 4, "[invalid_input] commit deadbeef"),
    (["head", "raw.events", "--as-of", "2000-01-01"], 4, "[invalid_input]"),
    (["head", "raw.ev\x01"], 4, "[invalid_input]"),
    (["log", "-n", "0"], 2, "-n"),
    (["branch", "create", "main"], 4, "main already exists"),
    (["branch", "create", "bad name"], 4, '"bad name"'),
    (["branch", "create", "b2", "--from", "nope"], 4, "nope"),
    (["branch", "delete", "main"], 4, "[invalid_input] main"),
    (["branch", "merge", "nope"], 4, "nope"),
    (["branch", "merge", "dev", "--into", "v1"], 4, "v1 is a tag"),
    (["branch", "diff", "nope"], 4, "nope"),
    (["tag", "create", "v1"], 4, "v1"),
    (["maintain", "expire", "--keep-last", "0"], 2, "--keep-last"),
    (["maintain", "expire", "--older-than", "5w"], 2, "5w"),
    (["maintain", "orphans", "--older-than", "-"], 2, "'-'"),
    (["validate", "missing.parquet", "--schema", "m:S"], 2, "missing.parquet"),
]


@pytest.mark.parametrize(("args", "exit_code", "needle"), CLI, ids=[" ".join(c[0]) for c in CLI])
def test_bad_cli_input(world: phlo.Lakehouse, args: list[str], exit_code: int, needle: str):
    before = fingerprint(world)
    result = CliRunner().invoke(cli, ["--root", str(world.root), *args])
    assert result.exit_code == exit_code, result.output
    assert needle in result.output
    assert "Traceback" not in result.output
    assert fingerprint(world) == before


def test_time_travel_to_the_future_reads_the_current_snapshot(world):
    table = world.table("raw.events", as_of=dt.datetime(2100, 1, 1))
    assert table.current_snapshot_id == events(world).current_snapshot_id
    assert table.to_arrow().num_rows == 12


def test_case_count():
    """The issue asks for at least 100 bad-input cases."""
    tables = [NAMES, SCHEMAS, PARTITIONS, WRITES, MERGES, SCANS, TIME_TRAVEL, REFS, MAINTENANCE]
    assert sum(map(len, tables)) + len(STAGING_AND_VALIDATION) + len(CLI) >= 100


# --- Storage failures: a typed StorageError naming the path, the table unchanged -------------


def data_files(table: phlo.Table) -> list[Path]:
    return sorted(table_dir(table).joinpath("data").rglob("*.parquet"))


def table_dir(table: phlo.Table) -> Path:
    return Path(table.metadata_location.removeprefix("file://")).parent.parent


@pytest.mark.parametrize("read", ["to_arrow", "to_batches", "to_pandas", "to_reader"])
def test_a_missing_data_file_is_a_storage_error_naming_it(world, read):
    table = events(world)
    missing = data_files(table)[0]
    missing.unlink()
    with pytest.raises(errors.StorageError) as info:
        result = getattr(table.scan(), read)()
        if read in ("to_batches", "to_reader"):
            list(result)
    assert str(missing) in str(info.value)
    assert "missing" in str(info.value)
    assert isinstance(info.value, OSError)


def test_a_folder_in_place_of_a_data_file_is_a_storage_error(world):
    table = events(world)
    target = data_files(table)[0]
    target.unlink()
    target.mkdir()
    with pytest.raises(errors.StorageError, match="a folder where a file belongs") as info:
        table.to_arrow()
    assert str(target) in str(info.value)


def test_merge_over_a_missing_data_file_is_a_storage_error(world):
    table = events(world)
    missing = data_files(table)[0]
    missing.unlink()
    before = (table.metadata_location, table.current_snapshot_id)
    with pytest.raises(errors.StorageError) as info:
        table.merge(make_events(0, 12), "id")
    assert str(missing) in str(info.value)
    assert (table.metadata_location, table.current_snapshot_id) == before


def test_a_missing_metadata_file_is_a_storage_error(world):
    # A file of main's own: the one v1 and dev point at has a copy they fall back to.
    events(world).set_properties({"owner": "main"})
    location = Path(events(world).metadata_location.removeprefix("file://"))
    location.rename(location.with_suffix(".moved"))
    # Another process reads it (`world` keeps the metadata files it has read or written).
    with pytest.raises(errors.StorageError) as info:
        phlo.Lakehouse.open(world.root).table("raw.events")
    assert str(location) in str(info.value)


def test_an_unwritable_data_folder_is_a_storage_error_and_commits_nothing(world):
    """A file where the data folder belongs stops writes even for root (who ignores chmod)."""
    table = events(world)
    before = fingerprint(world)
    folder = table_dir(table) / "data"
    shutil.move(folder, folder.with_name("data.moved"))
    folder.write_text("in the way")
    with pytest.raises(errors.StorageError) as info:
        table.append(NEW)
    assert str(folder) in str(info.value)
    folder.unlink()
    shutil.move(folder.with_name("data.moved"), folder)
    assert fingerprint(world) == before


def test_a_lakehouse_root_that_is_a_file_is_a_storage_error(tmp_path):
    root = tmp_path / "not-a-folder"
    root.write_text("")
    with pytest.raises(errors.StorageError) as info:
        phlo.Lakehouse.open(root)
    assert str(root) in str(info.value)


def test_staging_into_a_file_is_a_storage_error(tmp_path):
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(errors.StorageError) as info:
        phlo.stage(NEW, path)
    assert str(path) in str(info.value)
    assert os.path.getsize(path) == 0


# --- Panics become InternalError -------------------------------------------------------------


def test_a_panic_in_the_engine_is_an_internal_error(world):
    """PyIceberg creates a table with a bucket count of 0 (phlo refuses to); iceberg-rust
    divides by it when phlo writes, and the panic arrives as InternalError, not
    pyo3_runtime.PanicException."""
    from pyiceberg.catalog.sql import SqlCatalog
    from pyiceberg.partitioning import PartitionField, PartitionSpec
    from pyiceberg.schema import Schema as IcebergSchema
    from pyiceberg.transforms import BucketTransform
    from pyiceberg.types import LongType, NestedField

    catalog = SqlCatalog("phlo", uri=world.catalog_uri, warehouse=world.warehouse)
    catalog.create_table(
        "raw.buckets",
        IcebergSchema(NestedField(1, "id", LongType(), required=False)),
        partition_spec=PartitionSpec(
            PartitionField(source_id=1, field_id=1000, transform=BucketTransform(0), name="b")
        ),
    )
    table = world.table("raw.buckets")
    location = table.metadata_location
    with pytest.raises(errors.PhloError) as info:
        table.append(pa.table({"id": [1, 2]}))
    assert type(info.value) is errors.InternalError
    assert "panicked" in str(info.value) and "please report it" in str(info.value)
    assert table.metadata_location == location and table.history() == []
