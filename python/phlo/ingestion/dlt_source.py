"""Running a dlt source or resource to Parquet files, without loading it anywhere.

A real dlt pipeline extracts and normalizes into the attempt's folder (``pipelines_dir``); its
load package then holds the table's Parquet files — every one of them is taken. No data is
loaded into a destination (the filesystem destination is named only because dlt's normalizer
needs a destination's capabilities).

What phlo fixes for every dlt run:

- One table per ingestion: ``max_table_nesting=0`` on the resource, so nested objects and
  lists stay in their row as JSON strings instead of becoming child tables.
- dlt's naming convention applies: ``dateString`` arrives as ``date_string``. The schema and
  ``unique_key`` use the normalized names.
- dlt's ``_dlt_load_id`` and ``_dlt_id`` columns are dropped: phlo's ``_phlo_*`` columns
  identify the run and the row, and a random per-run id would make every re-run of a
  partition rewrite every row.
- Environment, for the duration of the run: telemetry off (``RUNTIME__DLTHUB_TELEMETRY``),
  ``DLT_DATA_DIR`` and ``DLT_LOCAL_DIR`` inside the attempt's folder (nothing is written under
  the home directory or the current folder), ``DLT_PROJECT_DIR`` the phlo project root (so a
  ``.dlt/`` folder with config and secrets next to ``phlo.yaml`` is read). Values already set
  in the environment by the user are kept, except telemetry.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from phlo.errors import SchemaError, SourceError
from phlo.ingestion.checks import missing_column_hint, snake_case
from phlo.ingestion.spool import files_reader

if TYPE_CHECKING:
    from phlo.ingestion.decorator import IngestionDefinition

__all__ = ["DLT_COLUMNS", "is_dlt", "run_dlt"]

#: Columns dlt adds to every row, which phlo drops.
DLT_COLUMNS = ("_dlt_load_id", "_dlt_id")

#: The environment is process-wide: one dlt run at a time per process changes it.
_ENV_LOCK = threading.Lock()


def is_dlt(value: Any) -> bool:
    """Whether `value` is a dlt source or resource (without importing dlt otherwise)."""
    if not type(value).__module__.startswith("dlt."):
        return False
    from dlt.extract.resource import DltResource
    from dlt.extract.source import DltSource

    return isinstance(value, DltSource | DltResource)


def run_dlt(
    value: Any, definition: IngestionDefinition, folder: Path
) -> tuple[pa.RecordBatchReader | None, int, list[Path]]:
    """Extracts and normalizes `value` under `folder`; returns a reader over the table's
    Parquet files (None if it has no rows), the row count and the files."""
    with _dlt_environment(folder):
        import dlt

        resource = _pick_resource(value, definition)
        resource.max_table_nesting = 0
        pipeline = dlt.pipeline(
            pipeline_name=f"phlo_{definition.table_name}",
            pipelines_dir=str(folder / "pipelines"),
            destination=dlt.destinations.filesystem(bucket_url=(folder / "unused").as_uri()),
            dataset_name=definition.table_name,
        )
        pipeline.extract(resource, loader_file_format="parquet")
        pipeline.normalize()
        tables = _table_files(pipeline)
    files = _pick_table(tables, definition)
    if not files:
        return None, 0, []
    schemas = [pq.read_schema(path) for path in files]
    schema = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    schema = pa.schema([f for f in schema if f.name not in DLT_COLUMNS])
    _check_keys(definition, schema)
    rows = sum(pq.read_metadata(path).num_rows for path in files)
    if rows == 0:
        return None, 0, files
    return files_reader(files, schema, _parquet_batches), rows, files


def _pick_resource(value: Any, definition: IngestionDefinition) -> Any:
    from dlt.extract.source import DltSource

    if not isinstance(value, DltSource):
        return value
    resources = value.selected_resources
    wanted = [definition.table_name, snake_case(definition.table_name)]
    name = next((n for n in wanted if n in resources), None)
    if name is None and len(resources) == 1:
        name = next(iter(resources))
    if name is None:
        raise SourceError(
            f"{definition.name}: the dlt source has resources {sorted(resources)}; phlo loads "
            f"one per ingestion: name one {definition.table_name!r} (the table_name), or "
            f"return source.with_resources(...) with one of them"
        )
    return resources[name]


def _table_files(pipeline: Any) -> dict[str, list[Path]]:
    """Parquet files of the normalized load packages, by table (dlt's own tables left out)."""
    tables: dict[str, list[Path]] = {}
    for load_id in pipeline.list_normalized_load_packages():
        package = pipeline.get_load_package_info(load_id)
        for job in package.jobs["new_jobs"]:
            info = job.job_file_info
            if info.table_name.startswith("_dlt") or info.file_format != "parquet":
                continue
            tables.setdefault(info.table_name, []).append(Path(job.file_path))
    for files in tables.values():
        files.sort()
    return tables


def _pick_table(tables: dict[str, list[Path]], definition: IngestionDefinition) -> list[Path]:
    if not tables:
        return []
    if len(tables) == 1:
        return next(iter(tables.values()))
    for name in (definition.table_name, snake_case(definition.table_name)):
        if name in tables:
            return tables[name]
    raise SourceError(
        f"{definition.name}: the dlt resource produced tables {sorted(tables)}; phlo loads "
        f"one table per ingestion: make the resource write one table (named "
        f"{definition.table_name!r})"
    )


def _check_keys(definition: IngestionDefinition, schema: pa.Schema) -> None:
    for key in definition.unique_key:
        if key not in schema.names:
            raise SchemaError(
                f"{definition.name}: the dlt data has no unique_key column {key!r}"
                + missing_column_hint(key, schema.names),
                column=key,
            )


def _parquet_batches(path: Path, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    file = pq.ParquetFile(path)
    columns = [name for name in file.schema_arrow.names if name in schema.names]
    yield from file.iter_batches(columns=columns)


@contextmanager
def _dlt_environment(folder: Path) -> Iterator[None]:
    from phlo.config import find_project_root

    settings = {
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DLT_DATA_DIR": os.environ.get("DLT_DATA_DIR", str(folder / "dlt-data")),
        "DLT_LOCAL_DIR": os.environ.get("DLT_LOCAL_DIR", str(folder / "dlt-local")),
        "DLT_PROJECT_DIR": os.environ.get("DLT_PROJECT_DIR", str(find_project_root())),
    }
    with _ENV_LOCK:
        saved = {key: os.environ.get(key) for key in settings}
        os.environ.update(settings)
        try:
            yield
        finally:
            for key, old in saved.items():
                if old is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = old
