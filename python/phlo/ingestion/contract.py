"""The ``pandera_contract`` check of an ingestion run: the validation report of the staged rows
as a `CheckResult` (the metadata contract every check shares)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

from phlo.quality.contract import SAMPLE_LIMIT, CheckResult

if TYPE_CHECKING:
    from phlo.ingestion.decorator import IngestionDefinition
    from phlo.validation import ValidationReport

CHECK_NAME = "pandera_contract"


def contract_result(
    definition: IngestionDefinition,
    partition_date: str,
    report: ValidationReport | None,
    total_count: int | None,
    staged_files: list[Path],
) -> CheckResult:
    """`report` None: nothing was validated (no data, or ``validate=False``) and the check
    passes over `total_count` (or 0) rows. ``failed_count`` counts failing rows; a failure
    that concerns the whole batch (a missing column) fails every row."""
    schema = definition.validation_schema
    schema_name = getattr(schema, "__name__", None) or getattr(schema, "name", None) or "schema"
    base = CheckResult(
        name=CHECK_NAME,
        passed=True,
        source="pandera",
        partition_key=partition_date,
        failed_count=0,
        total_count=total_count or 0,
        query_or_sql=f"pandera {schema_name}" if schema is not None else "no contract",
    )
    if report is None:
        return base
    checks = [*report.native_checks, *report.pandera_checks]
    rule = f"pandera {schema_name}: " + "; ".join(checks)
    if report.valid:
        return CheckResult(**{**base.__dict__, "query_or_sql": rule})
    cases = report.failure_cases
    rows = cases.column("index")
    failed = base.total_count if rows.null_count else len(pc.unique(rows))
    summary = "; ".join(_describe(r) for r in report.records)
    return CheckResult(
        **{
            **base.__dict__,
            "passed": False,
            "failed_count": min(failed, base.total_count),
            "query_or_sql": rule,
            "sample": _sample(cases),
            "repro_sql": _repro_sql(staged_files, report),
            "severity": "error" if definition.strict_validation else "warn",
            "message": summary,
        }
    )


#: Records about the data's columns rather than its values: they name the column.
_COLUMN_RECORDS = {
    "missing_column": "the data has no column {}",
    "unexpected_column": "the data has a column {} the strict contract does not declare",
}


def _describe(record: dict[str, Any]) -> str:
    template = _COLUMN_RECORDS.get(record.get("code", ""))
    if template is None:
        return f"{record['column']}: {record['check']} failed {record['count']}x"
    columns = ", ".join(repr(s["failure_case"]) for s in record["sample"])
    return template.format(columns)


def _sample(cases: Any) -> list[dict[str, Any]]:
    keep = ["column", "check", "failure_case", "index"]
    return [
        {k: (str(v) if k == "failure_case" and v is not None else v) for k, v in r.items()}
        for r in cases.select(keep).slice(0, SAMPLE_LIMIT).to_pylist()
    ]


def _repro_sql(staged_files: list[Path], report: ValidationReport) -> str:
    """DuckDB SQL over the kept staged files that returns the failing rows (by position)."""
    rows = report.failure_cases.column("index")
    positions = sorted({i for i in rows.to_pylist() if i is not None})[:SAMPLE_LIMIT]
    files = ", ".join(f"'{f.as_posix()}'" for f in staged_files)
    where = f"WHERE _row IN ({', '.join(map(str, positions))})" if positions else ""
    return (
        "SELECT * EXCLUDE (_row) FROM (SELECT *, row_number() OVER () - 1 AS _row "
        f"FROM read_parquet([{files}])) {where}"
    ).strip()
