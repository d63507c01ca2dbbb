"""Running a `@phlo_quality` definition: one scan of the checked rows, every engine check
updated by the engine and every Python check by Python on the same batches, then one
`CheckResult` per check with the metadata contract."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from phlo import _native
from phlo.errors import InputError
from phlo.quality.base import CheckPass, Finding, PythonCheck, QualityCheck, Scope
from phlo.quality.checks import CountCheck, EngineCheck
from phlo.quality.contract import SAMPLE_LIMIT, CheckResult

if TYPE_CHECKING:
    from phlo.lakehouse import Lakehouse, Scan
    from phlo.quality.decorator import QualityDefinition

#: Columns that identify a row in samples, when the table has them.
ID_COLUMNS = ["_phlo_row_id"]


def run_checks(
    definition: QualityDefinition, partition_date: str | None, lakehouse: Lakehouse, ref: str
) -> list[CheckResult]:
    table = lakehouse.table(definition.table, ref)
    schema = table.schema
    scope = _scope(definition, partition_date, schema, lakehouse, ref)
    engine = [c for c in definition.checks if isinstance(c, EngineCheck)]
    python = [c for c in definition.checks if isinstance(c, PythonCheck)]
    plan = json.dumps(
        {
            "checks": [c.spec(scope) for c in engine],
            "id_columns": scope.id_columns,
            "sample_limit": SAMPLE_LIMIT,
        }
    )
    everything = _columns(definition.checks, scope)
    # Only engine checks: strings may come as dictionaries (their values judged once each).
    planned = table.scan(everything, scope.filters, string_dictionaries=not python)
    evaluator = _native.QualityEvaluator(plan, planned.schema)
    passes = [c.start(scope) for c in python]
    if python:
        read = _python_pass(evaluator, planned, everything, python, passes, scope)
    else:
        # The engine settles what metadata and dictionary pages prove and reads the rest.
        read = evaluator.check(planned._native)
    findings: dict[int, Finding] = {}
    for check, outcome in zip(engine, evaluator.finish(), strict=True):
        findings[id(check)] = _engine_finding(check, outcome)
    for python_check, check_pass in zip(python, passes, strict=True):
        findings[id(python_check)] = check_pass.finish()
    scanned = {
        "files_scanned": planned.files_scanned,
        "files_total": planned.files_total,
        "snapshot_id": planned.snapshot_id,
        "files_read": planned.files_scanned if read else 0,
        "columns_read": read,
    }
    return [_result(c, findings[id(c)], scope, scanned) for c in definition.checks]


def _python_pass(
    evaluator: _native.QualityEvaluator,
    planned: Scan,
    everything: list[str] | None,
    python: list[PythonCheck],
    passes: list[CheckPass],
    scope: Scope,
) -> list[str]:
    """Settles the engine checks the data files' metadata and dictionary pages prove, then
    feeds one scan to the other engine checks and to the Python checks (their `passes`): only
    the columns those read (the same plan narrowed: one snapshot, manifests read once).
    Returns the columns read."""
    unsettled = evaluator.settle(planned._native)
    columns = _columns(list(python), scope, unsettled)
    scan = planned if columns == everything else planned.select(columns)
    for batch in scan.to_batches():
        evaluator.update(batch)
        for check_pass in passes:
            check_pass.update(batch)
    return list(scan.schema.names)


def _scope(
    definition: QualityDefinition,
    partition_date: str | None,
    schema: pa.Schema,
    lakehouse: Lakehouse,
    ref: str,
) -> Scope:
    dates = None
    if partition_date is not None:
        try:
            day = dt.date.fromisoformat(partition_date)
        except (TypeError, ValueError):
            raise InputError(f"partition_date must be YYYY-MM-DD, not {partition_date!r}") from None
        if definition.partition_aware and not definition.full_table:
            window = definition.rolling_window_days or 1
            dates = (day - dt.timedelta(days=window - 1), day)
            if schema.get_field_index(definition.partition_column) < 0:
                raise InputError(
                    f"{definition.table} has no partition column {definition.partition_column}; "
                    "set partition_column, or partition_aware=False / full_table=True to check "
                    "the whole table",
                    table=definition.table,
                    column=definition.partition_column,
                )
    return Scope(
        table=definition.table,
        ref=ref,
        partition_key=partition_date,
        partition_column=definition.partition_column,
        dates=dates,
        schema=schema,
        id_columns=[c for c in ID_COLUMNS if c in schema.names],
        lakehouse=lakehouse,
    )


def _columns(
    checks: list[QualityCheck], scope: Scope, extra: list[str] | None = None
) -> list[str] | None:
    """The columns to read: the id columns, `extra`, those the checks name that exist; None
    (all) when a check reads every column."""
    wanted: dict[str, None] = dict.fromkeys([*scope.id_columns, *(extra or [])])
    for check in checks:
        columns = check.columns()
        if columns is None:
            return None
        wanted.update(dict.fromkeys(c for c in columns if c in scope.schema.names))
    # Counting rows still needs a column: the smallest-looking one.
    return list(wanted) or [scope.partition_column if scope.dates else scope.schema.names[0]]


def _engine_finding(check: EngineCheck, outcome: dict[str, Any]) -> Finding:
    total = int(outcome["total"])
    broken = None
    if outcome["missing_columns"]:
        missing = ", ".join(outcome["missing_columns"])
        broken = f"{check.name}: column {missing} is not in the table"
    elif outcome["error"] is not None:
        broken = f"{check.name}: {outcome['error']}"
    sample = pa.record_batch(outcome["sample"]).to_pylist() if outcome["sample"] else []
    # Answered from the data files' metadata or dictionary pages (docs/quality.md): its
    # columns' rows were not read.
    details: dict[str, Any] = {
        "metadata_only": bool(outcome["from_metadata"]),
        "dictionary_only": bool(outcome["from_dictionaries"]),
    }
    if outcome["per_column"]:
        details["null_counts"] = dict(outcome["per_column"])
    if outcome["newest_us"] is not None:
        newest = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=outcome["newest_us"])
        details["newest"] = newest.isoformat()
    failed = int(outcome["failed"])
    if isinstance(check, CountCheck):
        failed = check.shortfall(total)
    if broken is not None:
        # A check that could not run fails every checked row.
        failed = total
    return Finding(failed, total, sample, broken=broken, details=details)


def _result(
    check: QualityCheck, finding: Finding, scope: Scope, scanned: dict[str, Any]
) -> CheckResult:
    passed = check.passes(finding)
    details = {k: _plain(v) for k, v in finding.details.items()}
    return CheckResult(
        name=check.name,
        passed=passed,
        source=check.source,
        partition_key=scope.partition_key,
        failed_count=finding.failed_count,
        total_count=finding.total_count,
        query_or_sql=check.query_sql(scope),
        sample=[_plain(row) for row in finding.sample[:SAMPLE_LIMIT]],
        # A check that could not run (a missing column) has no query that would.
        repro_sql="" if finding.broken else _repro(check, finding, scope),
        severity=check.severity,
        message="" if passed else check.describe(finding),
        details={**details, **scanned},
    )


def _repro(check: QualityCheck, finding: Finding, scope: Scope) -> str:
    return finding.repro_sql if finding.repro_sql is not None else check.repro_sql(scope)


def _plain(value: Any) -> Any:
    """JSON-safe values for metadata: times as ISO text, decimals and bytes as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
