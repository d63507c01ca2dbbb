"""Merging batches into tables: upsert on a unique key, or append, with deduplication.

The work happens in the Rust engine (`phlo-core/src/merge.rs`): only data files whose key range
can hold a batch key are read and rewritten, and the result is one atomic snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from phlo import _args, _native
from phlo._arrow import as_arrow
from phlo.display import HtmlRepr
from phlo.errors import InputError

if TYPE_CHECKING:
    from phlo.lakehouse import Table

__all__ = ["MergeResult", "WriteMode", "dedupe", "merge_into", "merge_to_iceberg"]

MergeStrategy = Literal["merge", "append"]
#: How a merge or delete removes rows: rewrite their files, or write position-delete files
#: beside them; ``auto`` decides per file (see docs/merge.md). None: the table's property.
WriteMode = Literal["copy-on-write", "merge-on-read", "auto"]
DeduplicationMethod = Literal["first", "last", "hash"]
#: The seed's keys, plus `order_by` (phlo's earlier name for `deduplication_order_by`) and
#: `write_mode` (how replaced rows are removed: what `@phlo_ingestion` can choose).
_CONFIG_KEYS = {
    "deduplication",
    "deduplication_method",
    "deduplication_order_by",
    "order_by",
    "write_mode",
}


@dataclass(frozen=True)
class MergeResult(HtmlRepr):
    """What one merge committed (one snapshot)."""

    snapshot_id: int
    rows_inserted: int
    rows_updated: int
    #: Table rows removed beyond one per updated key (keys the table held more than once).
    rows_deleted: int
    duplicates_dropped: int
    #: Data files read because their key range could hold batch keys.
    files_scanned: int
    #: Data files written (the batch's rows, and files rewritten copy-on-write).
    files_added: int
    files_removed: int
    #: Position-delete files written (merge-on-read).
    delete_files_added: int
    bytes_written: int
    commit_retries: int
    #: Seconds per phase: read_input, dedupe, plan, rewrite, write, commit.
    timings: dict[str, float] = field(repr=False)


def merge_into(
    table: Table,
    data: Any,
    unique_key: str | Sequence[str],
    merge_strategy: MergeStrategy = "merge",
    merge_config: Mapping[str, Any] | None = None,
    *,
    properties: Mapping[str, str] | None = None,
    schema_evolution: str = "strict",
    write_mode: WriteMode | None = None,
) -> MergeResult:
    """See `Table.merge`."""
    keys = _args.columns("unique_key", unique_key)
    method, order_by = dedupe_settings(merge_strategy, merge_config)
    configured = _args.optional_text(
        "merge_config['write_mode']", (merge_config or {}).get("write_mode")
    )
    if write_mode is not None and configured is not None and write_mode != configured:
        raise InputError(
            f"write_mode={write_mode!r} and merge_config['write_mode']={configured!r} disagree; "
            "give one of them"
        )
    result = table._native.merge(
        table.name,
        as_arrow(data),
        keys,
        _args.text("merge_strategy", merge_strategy),
        method,
        order_by,
        table.ref,
        _args.string_map("properties", properties),
        _args.text("schema_evolution", schema_evolution),
        _args.optional_text("write_mode", write_mode) or configured,
    )
    return MergeResult(**result)


def dedupe_settings(
    merge_strategy: str, merge_config: Mapping[str, Any] | None
) -> tuple[str | None, str | None]:
    """The deduplication method (None: keep every row) and order-by column a `merge_config`
    asks for. Keys: ``deduplication`` (bool), ``deduplication_method`` (``first`` | ``last`` |
    ``hash``), ``deduplication_order_by`` (or ``order_by``). A merge deduplicates with
    ``last`` unless told otherwise; an append only when a method is named or
    ``deduplication`` is true (then ``last``)."""
    if merge_config is not None and not isinstance(merge_config, Mapping):
        raise InputError(f"merge_config must be a mapping, not {merge_config!r}")
    config = dict(merge_config or {})
    unknown = set(config) - _CONFIG_KEYS
    if unknown:
        raise InputError(
            f"unknown merge_config keys {sorted(unknown)}; known: {sorted(_CONFIG_KEYS)}"
        )
    if "order_by" in config and "deduplication_order_by" in config:
        raise InputError(
            "merge_config has both order_by and deduplication_order_by; give one "
            "(deduplication_order_by is the seed's name)"
        )
    order_by = _args.optional_text(
        "deduplication_order_by", config.get("deduplication_order_by", config.get("order_by"))
    )
    enabled = config.get("deduplication")
    if enabled is not None:
        _args.flag("merge_config['deduplication']", enabled)
    method = _args.optional_text("deduplication_method", config.get("deduplication_method"))
    if enabled is False:
        if method is not None or order_by is not None:
            raise InputError(
                "merge_config turns deduplication off but names a deduplication method or "
                "order; drop one of them"
            )
        return None, None
    if method is None and (enabled or merge_strategy == "merge" or order_by is not None):
        method = "last"
    if method is not None and method not in ("first", "last", "hash"):
        raise InputError(f"deduplication_method must be 'first', 'last' or 'hash', not {method!r}")
    return method, order_by


def merge_to_iceberg(
    table: Table,
    new_data: Any,
    unique_key: str | Sequence[str],
    strategy: MergeStrategy = "merge",
    deduplication_method: DeduplicationMethod | None = "last",
    order_by: str | None = None,
    *,
    merge_config: Mapping[str, Any] | None = None,
) -> MergeResult:
    """The seed's function form of `Table.merge`: upsert (`strategy="merge"`) or append
    `new_data` into `table`, deduplicating on `unique_key` first. `merge_config` takes the
    same keys as `Table.merge` and wins over `deduplication_method` / `order_by`, the
    shorthands (unlike `Table.merge`, an append deduplicates with ``last`` by default)."""
    from phlo.lakehouse import Table

    if not isinstance(table, Table):
        raise InputError(f"table must be a phlo Table (lh.table(name)), not {table!r}")
    if merge_config is not None and not isinstance(merge_config, Mapping):
        raise InputError(f"merge_config must be a mapping, not {merge_config!r}")
    config: dict[str, Any] = dict(merge_config or {})
    if deduplication_method is not None and config.get("deduplication") is not False:
        config.setdefault("deduplication_method", deduplication_method)
    if order_by is not None and "order_by" not in config:
        config.setdefault("deduplication_order_by", order_by)
    return merge_into(table, new_data, unique_key, strategy, config)


def dedupe(
    data: Any,
    unique_key: str | Sequence[str],
    method: DeduplicationMethod = "last",
    order_by: str | None = None,
) -> tuple[pa.RecordBatch, int]:
    """Deduplicates Arrow-like `data` on `unique_key` with the merge engine's kernel: keep the
    ``"first"`` or ``"last"`` row of each key (last by arrival, or the greatest `order_by`), or
    drop rows whose whole content repeats (``"hash"``). Returns the kept rows, in arrival
    order, and the number dropped. Null keys raise `MergeError`."""
    keys = _args.columns("unique_key", unique_key)
    batch, dropped = _native.dedupe(
        as_arrow(data),
        keys,
        _args.text("method", method),
        _args.optional_text("order_by", order_by),
    )
    return pa.record_batch(batch), dropped
