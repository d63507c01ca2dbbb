"""Staging: write a run's input to Parquet before anything touches a table.

Staged files are the durable copy of the input until the run's commit succeeds: a failed or
killed run can be retried from them. Each row gets phlo's metadata columns: ``_phlo_row_id``
(a ULID), ``_phlo_ingested_at``, ``_phlo_partition_date`` and ``_phlo_run_id``.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from phlo import _args, _native
from phlo._arrow import as_arrow
from phlo.display import HtmlRepr
from phlo.errors import InputError

__all__ = ["StageResult", "stage"]


@dataclass(frozen=True)
class StageResult(HtmlRepr):
    """The staged Parquet files of one call."""

    run_id: str
    files: list[Path]
    rows: int
    bytes_written: int
    schema: pa.Schema

    def read(self) -> pa.Table:
        """The staged rows (for a merge: ``table.merge(staged.read(), "id")``)."""
        import pyarrow.parquet as pq

        return pa.concat_tables(pq.read_table(f, schema=self.schema) for f in self.files)


def stage(
    data: Any,
    directory: str | os.PathLike[str],
    *,
    run_id: str | None = None,
    partition_date: str | dt.date | None = None,
    rows_per_file: int = 250_000,
) -> StageResult:
    """Writes Arrow-like `data` as zstd Parquet files ``{directory}/{run_id}-NNNNN.parquet``
    (Iceberg field ids, `rows_per_file` rows a file, files encoded in parallel), adding phlo's
    metadata columns. Files appear only when complete."""
    run_id = _args.text("run_id", run_id) if run_id is not None else uuid.uuid4().hex
    if isinstance(partition_date, dt.date):
        partition_date = partition_date.isoformat()
    partition_date = _args.optional_text("partition_date", partition_date)
    if not isinstance(directory, str | os.PathLike):
        raise InputError(f"directory must be a path, not {directory!r}")
    rows_per_file = _args.integer("rows_per_file", rows_per_file, minimum=1)
    result = _native.stage(as_arrow(data), Path(directory), run_id, partition_date, rows_per_file)
    return StageResult(
        run_id=run_id,
        files=[Path(f) for f in result["files"]],
        rows=result["rows"],
        bytes_written=result["bytes_written"],
        schema=pa.schema(result["schema"]),
    )
