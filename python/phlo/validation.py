"""Validating Arrow-like data against Pandera schemas at engine speed.

`phlo.validate(data, EventSchema)` compiles the schema once (`phlo.schema.plan`), evaluates the
plan in Rust on the Arrow data (no copy into pandas or polars), runs the few checks the engine
cannot (custom, dataframe-wide) with Pandera itself, and returns the validated, coerced table —
or raises `ValidationError` with Pandera-compatible failure cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from phlo import _args, _native
from phlo._arrow import as_arrow
from phlo.display import HtmlRepr
from phlo.errors import ValidationError
from phlo.schema.plan import PanderaCheck, ValidationPlan, validation_plan

__all__ = ["ValidationReport", "Validator", "validate"]

#: Failure values kept per check in `ValidationError.errors()` samples.
SAMPLE_SIZE = 20

_FAILURE_SCHEMA = pa.schema(
    [
        pa.field("schema_context", pa.string(), nullable=False),
        pa.field("column", pa.string(), nullable=False),
        pa.field("check", pa.string(), nullable=False),
        pa.field("check_number", pa.int64()),
        pa.field("failure_case", pa.string()),
        pa.field("index", pa.int64()),
    ]
)


@dataclass(frozen=True)
class ValidationReport(HtmlRepr):
    """Everything one validation found: the validated table and every failure."""

    table: pa.Table = field(repr=False)
    #: Pandera's layout: schema_context, column, check, check_number, failure_case, index.
    failure_cases: pa.Table = field(repr=False)
    #: One summary per failed check (see `ValidationError.errors`).
    records: list[dict[str, Any]]
    #: ``column: check`` of the checks the engine evaluated.
    native_checks: list[str]
    #: ``column: check`` of the checks Pandera ran (custom, dataframe-wide…).
    pandera_checks: list[str]

    @property
    def valid(self) -> bool:
        return not self.records


class Validator:
    """A Pandera schema compiled once, to validate many batches::

    validator = phlo.Validator(EventSchema)
    validator.native_checks          # what the engine evaluates
    table = validator.validate(batch)
    """

    def __init__(self, schema: Any, *, max_failure_cases: int | None = None) -> None:
        max_failure_cases = _args.optional_integer(
            "max_failure_cases", max_failure_cases, minimum=0
        )
        self.plan: ValidationPlan = validation_plan(schema, max_failure_cases=max_failure_cases)

    @property
    def native_checks(self) -> list[str]:
        return list(self.plan.native_checks)

    @property
    def pandera_checks(self) -> list[str]:
        return [_label(c) for c in self.plan.pandera_checks]

    def validate(self, data: Any, *, lazy: bool = True) -> pa.Table:
        """The validated (coerced, filtered) table; raises `ValidationError` on any failure.
        With ``lazy=False`` the error reports only the first failed check."""
        lazy = _args.flag("lazy", lazy)
        report = self.report(data)
        if not report.valid:
            raise _error(self.plan.schema_name, report, lazy)
        return report.table

    def report(self, data: Any) -> ValidationReport:
        """Validates without raising: the table and every failure found."""
        out = _native.validate(as_arrow(data), self.plan.plan_json, self.plan.declared)
        table = pa.table(out["table"])
        failures = pa.Table.from_batches([pa.record_batch(out["failure_cases"])])
        records = _records(out["counts"], failures, self.plan.max_failure_cases)
        moved = []
        for column, number, _why in out["unsupported"]:
            check = self.plan.schema.columns[column].checks[number]
            moved.append(PanderaCheck(column, number, check, str(check.error or check.name)))
        left = [*self.plan.pandera_checks, *moved]
        if left:
            extra = _run_pandera(self.plan, table, left)
            if extra.num_rows:
                failures = pa.concat_tables([failures, extra])
                records += _records_of(extra)
        moved_labels = {_label(c) for c in moved}
        native = [c for c in self.plan.native_checks if c not in moved_labels]
        return ValidationReport(
            table=table,
            failure_cases=failures,
            records=records,
            native_checks=native,
            pandera_checks=[_label(c) for c in left],
        )


_CACHE: dict[int, tuple[Any, Validator]] = {}


def validate(
    data: Any, schema: Any, *, lazy: bool = True, max_failure_cases: int | None = None
) -> pa.Table:
    """Validates Arrow-like `data` (pyarrow, polars, pandas, DuckDB…) against a Pandera
    `DataFrameModel` or `DataFrameSchema` and returns the validated, coerced Arrow table, or
    raises `phlo.errors.ValidationError` (``.failure_cases``, ``.errors()``).
    `max_failure_cases` caps the cases kept per check (counts stay exact)."""
    key = id(schema)
    cached = _CACHE.get(key)
    if cached is None or cached[0] is not schema or max_failure_cases is not None:
        validator = Validator(schema, max_failure_cases=max_failure_cases)
        if max_failure_cases is None:
            if len(_CACHE) > 64:
                _CACHE.clear()
            _CACHE[key] = (schema, validator)
    else:
        validator = cached[1]
    return validator.validate(data, lazy=lazy)


_CODES = {
    "not_nullable": "null_values",
    "field_uniqueness": "duplicate_values",
    "multiple_fields_uniqueness": "duplicate_rows",
    "column_in_dataframe": "missing_column",
    "column_in_schema": "unexpected_column",
}


def _code(check: str) -> str:
    if check in _CODES:
        return _CODES[check]
    if check.startswith("coerce_dtype("):
        return "coercion_failed"
    if check.startswith("dtype("):
        return "wrong_dtype"
    return "check_failed"


def _records(
    counts: list[tuple[str, str, str, int | None, int]], failures: pa.Table, cap: int | None
) -> list[dict[str, Any]]:
    """Per-check summaries from the engine's counts; each check's kept cases are contiguous in
    `failures`, in the same order as `counts`, at most `cap` of them."""
    records, offset = [], 0
    for context, column, check, number, count in counts:
        kept = count if cap is None else min(count, cap)
        sample = failures.slice(offset, min(kept, SAMPLE_SIZE)).select(["index", "failure_case"])
        offset += kept
        records.append(_record(context, column, check, number, count, sample.to_pylist()))
    return records


def _records_of(failures: pa.Table) -> list[dict[str, Any]]:
    """Per-check summaries of failure cases (those Pandera found), in one pass."""
    groups: dict[tuple[str, str, str, int | None], tuple[list[int], list[dict[str, Any]]]] = {}
    for r in failures.to_pylist():
        key = (r["schema_context"], r["column"], r["check"], r["check_number"])
        count, sample = groups.setdefault(key, ([0], []))
        count[0] += 1
        if len(sample) < SAMPLE_SIZE:
            sample.append({"index": r["index"], "failure_case": r["failure_case"]})
    return [
        _record(context, column, check, number, count[0], sample)
        for (context, column, check, number), (count, sample) in groups.items()
    ]


def _record(
    context: str,
    column: str,
    check: str,
    number: int | None,
    count: int,
    sample: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "code": _code(check),
        "schema_context": context,
        "column": column,
        "check": check,
        "check_number": number,
        "count": count,
        "sample": sample,
    }


def _error(schema_name: str, report: ValidationReport, lazy: bool) -> ValidationError:
    records = report.records if lazy else report.records[:1]
    cases = report.failure_cases
    if not lazy:
        first = records[0]
        cases = cases.filter(
            pc.and_(
                pc.equal(cases["column"], first["column"]),
                pc.equal(cases["check"], first["check"]),
            )
        )
    lines = []
    for r in records[:10]:
        where = ", ".join(
            f"row {s['index']}: {s['failure_case']!r}"
            if s["index"] is not None
            else str(s["failure_case"])
            for s in r["sample"][:3]
        )
        lines.append(f"  {r['column']}: {r['check']} failed {r['count']}x ({where})")
    if len(records) > 10:
        lines.append(f"  … and {len(records) - 10} more checks")
    message = (
        f"{schema_name}: {len(records)} check(s) failed\n"
        + "\n".join(lines)
        + "\nFix the data or the schema; every case is in err.failure_cases, a summary in "
        "err.errors()."
    )
    column = records[0]["column"] if len(records) == 1 else None
    return ValidationError(message, column=column, failure_cases=cases, records=records)


def _label(check: PanderaCheck) -> str:
    return f"{check.column or '<dataframe>'}: {check.name}"


def _run_pandera(plan: ValidationPlan, table: pa.Table, checks: list[PanderaCheck]) -> pa.Table:
    """Runs the checks the engine could not with Pandera on `table`; their failure cases, with
    the check numbers of the original schema."""
    import importlib

    pandera_backend: Any = importlib.import_module(f"pandera.{plan.backend}")
    if plan.backend == "polars":
        import polars as pl

        frame: Any = pl.from_arrow(table)
    else:
        frame = table.to_pandas()
    present = set(table.column_names)
    columns: dict[str, Any] = {}
    numbers: dict[str, list[int]] = {}
    for c in checks:
        if c.column is None:
            continue
        if c.check_number < 0:  # a regex column, checked by Pandera as declared
            columns[c.column] = c.check
        elif c.column in present:
            existing = columns.get(c.column)
            chosen = [*(existing.checks if existing is not None else []), c.check]
            columns[c.column] = pandera_backend.Column(checks=chosen, nullable=True, required=False)
            numbers.setdefault(c.column, []).append(c.check_number)
    frame_checks = [c for c in checks if c.column is None]
    reduced = pandera_backend.DataFrameSchema(
        columns, checks=[c.check for c in frame_checks], name=plan.schema_name
    )
    try:
        reduced.validate(frame, lazy=True)
        return _FAILURE_SCHEMA.empty_table()
    except pandera_backend.errors.SchemaErrors as exc:
        found = exc.failure_cases
    rows = found.to_dicts() if hasattr(found, "to_dicts") else found.to_dict("records")
    out = []
    for row in rows:
        number = row.get("check_number")
        number = None if number is None or number != number else int(number)
        column = row.get("column")
        if number is not None:
            if column in numbers:
                number = numbers[column][number]
            elif row.get("schema_context") == "DataFrameSchema":
                number = frame_checks[number].check_number
        case = row.get("failure_case")
        index = row.get("index")
        out.append(
            {
                "schema_context": str(row.get("schema_context")),
                "column": str(column),
                "check": str(row.get("check")),
                "check_number": number,
                "failure_case": None if case is None or case != case else str(case),
                "index": None if index is None or index != index else int(index),
            }
        )
    return pa.Table.from_pylist(out, schema=_FAILURE_SCHEMA)
