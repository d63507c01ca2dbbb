"""Extraction: calling an ingestion's function, with retries and a time limit, and turning what
it returned into one Arrow stream.

The function may return:

- a dlt source or resource: run through a real dlt pipeline to Parquet (`dlt_source`);
- Arrow data in memory — a pyarrow Table or RecordBatch, a polars or pandas DataFrame, a
  DuckDB relation, anything exporting ``__arrow_c_array__``: read as is (no copy where the
  library allows);
- a lazy Arrow stream — a `RecordBatchReader`, anything exporting ``__arrow_c_stream__``: drained
  during extraction into Arrow files of the attempt's folder (`spool`);
- an iterable of dicts (a list, a generator), or of Arrow tables/batches/DataFrames:
  converted `BATCH_ROWS` at a time and spooled, typed by the definition's schema where it names
  the column;
- None, or no rows at all: no data.

Everything the source does — the call and, for lazy results, producing every row — happens
inside the attempt, so a failure is retried (`max_retries` times, `retry_delay_seconds` doubling
each time, each attempt in a fresh ``workdir/attempt-N``) and the whole extraction, retries and
waits included, is stopped at `max_runtime_seconds` (`deadline`). Errors phlo raises itself (a
return value it cannot read, a column changing type) are not retried: they would fail again.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa

from phlo._arrow import as_arrow
from phlo.errors import IngestionTimeoutError, PhloError, SourceError
from phlo.ingestion.deadline import Deadline, DeadlineInterrupt
from phlo.ingestion.dlt_source import is_dlt, run_dlt
from phlo.ingestion.spool import Spool, batched

if TYPE_CHECKING:
    from phlo.ingestion.decorator import IngestionDefinition

__all__ = ["Extracted", "SourceKind", "contract_schema", "extract"]

log = logging.getLogger(__name__)
#: The wait between attempts (tests record it instead of waiting).
_sleep = time.sleep

SourceKind = Literal["dlt", "arrow", "records", "none"]

_ACCEPTED = (
    "return a dlt source or resource, Arrow data (a pyarrow Table, RecordBatch or "
    "RecordBatchReader, a polars or pandas DataFrame, anything exporting __arrow_c_stream__), "
    "an iterable of dicts (a list or a generator), or None for no data"
)


@dataclass
class Extracted:
    """What one extraction produced."""

    #: Every row the source produced; None when it produced none.
    reader: pa.RecordBatchReader | None
    #: Rows in `reader`, when known before reading it.
    rows: int | None
    #: Files the extraction wrote (dlt's Parquet, spooled Arrow files) under the workdir; they
    #: back `reader`, so remove them only after reading it.
    files: list[Path]
    source_kind: SourceKind
    #: Attempts it took (1: no retry).
    attempts: int = 1
    #: The folder of the attempt that succeeded.
    folder: Path | None = field(default=None, repr=False)


def extract(
    definition: IngestionDefinition,
    partition_date: str,
    workdir: Path,
    *,
    deadline: float | None = None,
) -> Extracted:
    """Calls ``definition.fn(partition_date=...)`` and reads everything it returned, retrying
    failures. `deadline` is the `time.monotonic()` instant extraction must end by (None:
    ``max_runtime_seconds`` from now).

    Raises `IngestionTimeoutError` past the deadline, `SourceError` when every attempt failed
    (the last failure is the ``__cause__``; the message names the attempts), and the
    `SchemaError` / `SourceError` of a result phlo cannot read."""
    limit = Deadline(
        deadline if deadline is not None else time.monotonic() + definition.max_runtime_seconds
    )
    attempts = definition.max_retries + 1
    last: Exception | None = None
    try:
        for attempt in range(1, attempts + 1):
            folder = Path(workdir) / f"attempt-{attempt}"
            try:
                with limit.enforce():
                    extracted = _attempt(definition, partition_date, folder)
                extracted.attempts = attempt
                return extracted
            except DeadlineInterrupt:
                shutil.rmtree(folder, ignore_errors=True)
                raise _timeout(definition, attempt, attempts, last, "was interrupted") from last
            except PhloError:
                raise
            except Exception as exc:
                shutil.rmtree(folder, ignore_errors=True)
                if limit.fired:  # the interrupt surfaced wrapped in another exception
                    raise _timeout(definition, attempt, attempts, exc, "was interrupted") from exc
                last = exc
            if attempt < attempts:
                delay = definition.retry_delay_seconds * 2 ** (attempt - 1)
                if delay >= limit.remaining():
                    raise _timeout(
                        definition,
                        attempt,
                        attempts,
                        last,
                        f"failed, and a retry in {delay:g}s would start too late",
                    ) from last
                log.warning(
                    "%s: attempt %d of %d failed (%s: %s); retrying in %gs",
                    definition.name,
                    attempt,
                    attempts,
                    type(last).__name__,
                    last,
                    delay,
                )
                _sleep(delay)
        raise SourceError(
            f"{definition.name}: the source failed on all {attempts} attempts (max_retries="
            f"{definition.max_retries}); last error: {_describe(last)}",
            table=definition.table_name,
        ) from last
    finally:
        limit.close()


def _timeout(
    definition: IngestionDefinition,
    attempt: int,
    attempts: int,
    last: BaseException | None,
    what: str,
) -> IngestionTimeoutError:
    cause = f"; the previous error: {_describe(last)}" if last is not None else ""
    return IngestionTimeoutError(
        f"{definition.name}: extraction exceeded max_runtime_seconds={definition.max_runtime_seconds:g} "
        f"(attempt {attempt} of {attempts} {what}){cause}; raise max_runtime_seconds or make the "
        "source faster",
        table=definition.table_name,
    )


def _describe(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}" if exc is not None else "none"


def _attempt(definition: IngestionDefinition, partition_date: str, folder: Path) -> Extracted:
    folder.mkdir(parents=True, exist_ok=True)
    value = definition.fn(partition_date=partition_date)
    extracted = _read(value, definition, folder)
    extracted.folder = folder
    if extracted.reader is None or extracted.rows == 0:
        return Extracted(None, 0, extracted.files, "none", folder=folder)
    return extracted


def _read(value: Any, definition: IngestionDefinition, folder: Path) -> Extracted:
    if value is None:
        return Extracted(None, 0, [], "none")
    if is_dlt(value):
        reader, rows, files = run_dlt(value, definition, folder)
        return Extracted(reader, rows, files, "dlt")
    table = _in_memory(value)
    if table is not None:
        return Extracted(table.to_reader(), table.num_rows, [], "arrow")
    if hasattr(value, "__arrow_c_stream__"):
        spool = Spool(folder)
        for batch in pa.RecordBatchReader.from_stream(value):
            spool.add(batch)
        return Extracted(spool.reader(), spool.rows, spool.files, "arrow")
    if isinstance(value, Iterable) and not isinstance(value, str | bytes | Mapping):
        return _read_iterable(value, definition, folder)
    raise SourceError(
        f"{definition.name} returned a {type(value).__name__}, which phlo cannot read; {_ACCEPTED}",
        table=definition.table_name,
    )


def _in_memory(value: Any) -> pa.Table | None:
    """`value` as a Table when it is Arrow-like data already in memory (None otherwise)."""
    if isinstance(value, pa.Table):
        return value
    if isinstance(value, pa.RecordBatch):
        return pa.Table.from_batches([value])
    module = type(value).__module__.split(".")[0]
    if module == "polars" and hasattr(value, "to_arrow") and hasattr(value, "columns"):
        return value.to_arrow()
    if module in ("pandas", "duckdb") and not isinstance(value, pa.RecordBatchReader):
        return pa.table(as_arrow(value))
    if hasattr(value, "__arrow_c_array__") and not hasattr(value, "__arrow_c_stream__"):
        return pa.Table.from_batches([pa.record_batch(value)])
    return None


def _read_iterable(
    value: Iterable[Any], definition: IngestionDefinition, folder: Path
) -> Extracted:
    items = iter(value)
    first = next(items, None)
    if first is None:
        return Extracted(None, 0, [], "none")
    rest = itertools.chain([first], items)
    if isinstance(first, Mapping):
        spool = Spool(folder, contract_schema(definition))
        for chunk in batched(rest):
            spool.add_records(chunk)
        return Extracted(spool.reader(), spool.rows, spool.files, "records")
    spool = Spool(folder)
    for item in rest:
        table = _in_memory(item)
        if table is None:
            raise SourceError(
                f"{definition.name} yielded a {type(item).__name__} after {spool.rows} rows; "
                "an iterable source yields dicts (one per row) or Arrow tables/batches/"
                "DataFrames",
                table=definition.table_name,
            )
        spool.add(table)
    return Extracted(spool.reader(), spool.rows, spool.files, "arrow")


def contract_schema(definition: IngestionDefinition) -> pa.Schema | None:
    """The Arrow schema of the definition's contract (`validation_schema`, else
    `table_schema`), as ``lh.create_table`` would create the table; None without one."""
    from phlo.schema.iceberg import table_schema

    schema = (
        definition.validation_schema
        if definition.validation_schema is not None
        else definition.table_schema
    )
    if schema is None:
        return None
    return pa.schema([f.remove_metadata() for f in table_schema(schema)])
