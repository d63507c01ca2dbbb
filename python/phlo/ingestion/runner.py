"""One ingestion run for one partition: extract → stage → validate → merge (or append) on the
run's branch → audit → publish. The same code runs inside Dagster (`phlo.dagster`, which audits
with asset checks and publishes through its promotion sensor) and outside it
(`IngestionDefinition.run`, which audits and publishes inline).

Nothing reaches a table before the contract passed: the input is staged to Parquet (the durable
copy a failed run keeps and reports), validated, and only then written, as one snapshot per run
and table. Staged files are removed once that commit succeeded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import time
import uuid
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.dataset as pads

from phlo import wap
from phlo.errors import (
    CommitConflictError,
    InputError,
    NoSuchTableError,
    PhloError,
    ValidationError,
)
from phlo.ingestion.audit import audit, blocked, checks_of
from phlo.ingestion.contract import contract_result
from phlo.ingestion.result import IngestionResult
from phlo.ingestion.sources import extract
from phlo.schema.iceberg import METADATA_COLUMNS, table_schema
from phlo.stage import stage

if TYPE_CHECKING:
    from phlo.ingestion.decorator import IngestionDefinition
    from phlo.lakehouse import Lakehouse, Table
    from phlo.merge import MergeResult

__all__ = ["execute", "run_inline"]

_METADATA_NAMES = set(METADATA_COLUMNS.names)
#: The snapshot property a branch merge (docs/branches.md) rebases a write by: the unique key
#: no row of which both the branch and the target may have written since the fork.
REBASE_KEY_PROPERTY = "phlo.unique-key"


def execute(
    definition: IngestionDefinition,
    partition_date: str,
    *,
    lakehouse: Lakehouse,
    branch: str,
    target: str,
    run_id: str,
    namespace: str = "raw",
    staging_dir: Path | None = None,
) -> IngestionResult:
    """Runs the pipeline for one partition, writing to `branch` (which exists), without
    publishing. Returns status ``written``, ``no_data`` or ``failed_contract`` (strict
    validation failed: nothing written, the staged files kept and listed). With
    ``strict_validation=False`` a failing contract is reported and the rows are written."""
    partition_date = _partition_date(partition_date)
    ident = definition.table_identifier(namespace)
    workdir = (
        staging_dir / run_id if staging_dir else wap.staging_folder(lakehouse, run_id)
    ) / ident
    timings: dict[str, float] = {}
    base = IngestionResult(ident, partition_date, run_id, "no_data", branch, target)

    started = time.perf_counter()
    deadline = time.monotonic() + definition.max_runtime_seconds
    extracted = extract(definition, partition_date, workdir / "extract", deadline=deadline)
    timings["extract"] = time.perf_counter() - started
    if extracted.reader is None:
        _finished(workdir)
        contract = contract_result(definition, partition_date, None, None, [])
        return replace(base, contract=contract, timings=timings)

    started = time.perf_counter()
    staged = stage(
        extracted.reader, workdir / "staged", run_id=run_id, partition_date=partition_date
    )
    _remove(workdir / "extract")
    timings["stage"] = time.perf_counter() - started
    if staged.rows == 0:
        _finished(workdir)
        contract = contract_result(definition, partition_date, None, None, [])
        return replace(base, contract=contract, timings=timings)

    started = time.perf_counter()
    data = pads.dataset([str(f) for f in staged.files], format="parquet").to_table()
    data, report = _validated(definition, data)
    contract = contract_result(definition, partition_date, report, data.num_rows, staged.files)
    timings["validate"] = time.perf_counter() - started
    result = replace(base, rows_extracted=staged.rows, contract=contract)
    if not contract.passed and definition.strict_validation:
        return replace(result, status="failed_contract", staged_files=staged.files, timings=timings)
    if not definition.add_metadata_columns:
        data = data.drop_columns([c for c in data.column_names if c in _METADATA_NAMES])

    started = time.perf_counter()
    try:
        table, merged = _write(
            definition,
            lakehouse,
            ident,
            branch,
            data,
            partition_date,
            run_id,
            isolated=branch != target,
        )
    except PhloError as exc:
        exc.add_note(f"The staged input is kept in {workdir / 'staged'}.")
        raise
    elapsed = time.perf_counter() - started
    timings["commit"] = merged.timings.get("commit", 0.0)
    timings["merge"] = max(elapsed - timings["commit"], 0.0)
    _finished(workdir)
    return replace(
        result,
        status="written",
        rows_inserted=merged.rows_inserted,
        rows_updated=merged.rows_updated,
        rows_deleted=merged.rows_deleted,
        duplicates_dropped=merged.duplicates_dropped,
        snapshot_id=merged.snapshot_id,
        schema=table.schema,
        timings=timings,
    )


def run_inline(
    definition: IngestionDefinition,
    partition_date: str,
    *,
    lakehouse: Lakehouse | None,
    ref: str,
) -> IngestionResult:
    """`IngestionDefinition.run`: `execute` on a fresh run branch of `ref`, the project's
    `@phlo_quality` checks of the table on that branch (`phlo.ingestion.audit`), then publish.
    A strict contract failure raises `ValidationError`, a failing blocking check (or one that
    could not run) `QualityCheckError` (``.result`` holds the `IngestionResult`); either way
    `ref` is unchanged and the branch kept. With WAP off in `phlo.yaml` the run writes straight
    on `ref`: the checks run after that commit and are only reported (no branch, no gate)."""
    from phlo.config import load_project

    project = load_project()
    lh = lakehouse if lakehouse is not None else project.open_lakehouse()
    run_id = uuid.uuid4().hex
    namespace = definition.namespace or project.namespace
    ident = definition.table_identifier(namespace)
    # Found before anything is written: a project whose workflows do not import writes nothing.
    checks = checks_of(project.root, ident)
    ensure_table(definition, lh, ident, ref)
    branch = wap.ensure_run_branch(lh, run_id, ref) if project.wap.enabled else ref
    result = execute(
        definition,
        partition_date,
        lakehouse=lh,
        branch=branch,
        target=ref,
        run_id=run_id,
        namespace=namespace,
    )
    if result.status == "failed_contract":
        error = ValidationError(result.contract_failure())
        error.result = result  # type: ignore[attr-defined]
        raise error
    if result.status == "no_data":
        if branch != ref:
            lh.delete_branch(branch)
        return result
    started = time.perf_counter()
    found, cause = audit(checks, result.partition_date, lh, branch)
    timings = {**result.timings, "audit": time.perf_counter() - started}
    result = replace(result, quality=found.results, timings=timings)
    if branch == ref:
        if not found.passed:
            # No branch to keep the rows on: they are published already.
            warnings.warn(
                f"{result.table} partition {partition_date}: published without an audit gate "
                f"(WAP is off in phlo.yaml): {found.reasons()}",
                stacklevel=3,
            )
        return replace(result, status="published")
    if not found.passed:
        raise blocked(result, found) from cause
    started = time.perf_counter()
    try:
        wap.promote(lh, run_id, ref)
    except CommitConflictError as exc:
        exc.add_note(
            f"{result.table} partition {partition_date}: run {run_id} was not published; its "
            f"branch {branch} is kept (read it with ref={branch!r}). To publish the partition, "
            "re-run it: a new run forks from the target as it is now."
        )
        raise
    timings = {**result.timings, "publish": time.perf_counter() - started}
    return replace(result, status="published", timings=timings)


def ensure_table(
    definition: IngestionDefinition, lakehouse: Lakehouse, ident: str, ref: str
) -> None:
    """Creates the table on `ref` (empty, from the definition's schema) when it is missing, so
    that every run branch forked afterwards holds it: runs that each created the table on
    their own branch could not all be published."""
    try:
        lakehouse.table(ident, ref)
    except NoSuchTableError:
        _create(definition, lakehouse, ident, ref)


def _write(
    definition: IngestionDefinition,
    lakehouse: Lakehouse,
    ident: str,
    branch: str,
    data: pa.Table,
    partition_date: str,
    run_id: str,
    *,
    isolated: bool,
) -> tuple[Table, MergeResult]:
    """One dedupe + merge (or append) commit of the validated rows on `branch` (a run branch
    when `isolated`, else the target itself)."""
    try:
        table = lakehouse.table(ident, branch)
    except NoSuchTableError:
        table = _create(definition, lakehouse, ident, branch)
    properties = {"phlo.run-id": run_id, "phlo.partition-date": partition_date}
    message = f"ingest {ident} partition {partition_date} (run {run_id})"
    if definition.merge_strategy != "append" or not definition.add_metadata_columns:
        return table, _merge(definition, table, data, properties, message)
    # A re-run of a partition replaces that partition's earlier rows instead of adding them a
    # second time. The run owns its partition: both commits are keyed by the partition column,
    # so publishing the branch conflicts when the target gained rows of this partition since
    # the fork (a concurrent run of it: its rows would be there twice) and rebases past runs
    # of other partitions.
    properties[REBASE_KEY_PROPERTY] = "_phlo_partition_date"
    replaced = ("_phlo_partition_date", "==", partition_date)
    if isolated:
        table.delete(replaced, properties=properties)
        return table, _merge(definition, table, data, properties, message)
    # Straight on the target (WAP off): the delete and the append land in one commit, so no
    # reader sees the partition gone and a killed run does not leave it so.
    with lakehouse.transaction(branch, message=message) as tx:
        private = tx.table(ident)
        private.delete(replaced, properties=properties)
        merged = _merge(definition, private, data, properties, message)
    return lakehouse.table(ident, branch), merged


def _merge(
    definition: IngestionDefinition,
    table: Table,
    data: pa.Table,
    properties: dict[str, str],
    message: str,
) -> MergeResult:
    return table.merge(
        data,
        definition.unique_key,
        definition.merge_strategy,
        definition.merge_config,
        properties=properties,
        message=message,
        schema_evolution="evolve",
    )


def _create(definition: IngestionDefinition, lakehouse: Lakehouse, ident: str, ref: str) -> Table:
    namespace = ident.rsplit(".", 1)[0]
    lakehouse.create_namespace(namespace, exist_ok=True)
    return lakehouse.create_table(
        ident,
        table_schema(
            definition.table_schema or definition.validation_schema,
            metadata_columns=definition.add_metadata_columns,
        ),
        partition_by=definition.partition_spec,
        ref=ref,
        exist_ok=True,
    )


def _validated(definition: IngestionDefinition, data: pa.Table) -> tuple[pa.Table, Any]:
    """The staged rows coerced by the contract, and the validation report (None when the
    definition does not validate). phlo's metadata columns are set aside while validating so
    a strict contract does not see them."""
    if not definition.validate or definition.validation_schema is None:
        return data, None
    from phlo.validation import Validator

    metadata = [c for c in data.column_names if c in _METADATA_NAMES]
    report = Validator(definition.validation_schema).report(data.drop_columns(metadata))
    coerced = report.table
    for name in metadata:
        if name not in coerced.column_names and coerced.num_rows == data.num_rows:
            coerced = coerced.append_column(data.schema.field(name), data.column(name))
    return coerced, report


def _partition_date(value: Any) -> str:
    if isinstance(value, dt.date):
        return value.isoformat()[:10]
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise InputError(f"partition_date must be a date like 2024-01-31, not {value!r}") from None


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _finished(workdir: Path) -> None:
    """Removes a run's working folder, and the run's staging folder once no other table of
    the run uses it."""
    _remove(workdir)
    with contextlib.suppress(OSError):
        workdir.parent.rmdir()
