"""Checks evaluated in Python on the batches of the run's scan: a SQL expression per row
(DuckDB), the full Pandera contract (`phlo.Validator`), and reconciliation with another
table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from phlo._extras import require
from phlo.errors import ConfigError
from phlo.quality.base import CheckPass, Finding, PythonCheck, Scope, Severity, check_name
from phlo.quality.contract import SAMPLE_LIMIT
from phlo.quality.sql import REPRO_LIMIT, ident, literal, relation

__all__ = ["CustomSQLCheck", "ReconciliationCheck", "SchemaCheck"]

#: The name the batch has in a `CustomSQLCheck`'s DuckDB query.
_BATCH = "__phlo_rows"


@dataclass(frozen=True, init=False)
class CustomSQLCheck(PythonCheck):
    """`sql` is a boolean DuckDB expression over one row's columns (``ts <= now()``); a row
    fails when it is not `expected` (a NULL result skips the row). Evaluated by DuckDB on
    each batch of the scan."""

    name_: str
    sql: str
    expected: bool = True
    allow_threshold: float = 0.0
    severity: Severity = "error"

    def __init__(
        self,
        name_: str,
        sql: str,
        expected: bool = True,
        allow_threshold: float = 0.0,
        *,
        severity: Severity = "error",
    ) -> None:
        if not isinstance(name_, str) or not name_.strip():
            raise ConfigError(f"CustomSQLCheck: name_ must be a non-empty name, not {name_!r}")
        if not isinstance(sql, str) or not sql.strip():
            raise ConfigError("CustomSQLCheck: sql must be a boolean SQL expression")
        if ";" in sql:
            raise ConfigError(
                "CustomSQLCheck: sql must be one boolean expression, without ';' "
                '(e.g. "ts <= now()")'
            )
        if not isinstance(expected, bool):
            raise ConfigError(f"CustomSQLCheck: expected must be True or False, not {expected!r}")
        object.__setattr__(self, "name_", name_)
        object.__setattr__(self, "sql", sql)
        object.__setattr__(self, "expected", expected)
        object.__setattr__(self, "allow_threshold", allow_threshold)
        object.__setattr__(self, "severity", severity)
        self._check_settings()

    @property
    def name(self) -> str:
        return check_name(self.name_)

    def columns(self) -> None:
        return None

    def failing_sql(self) -> str:
        return f"(({self.sql})) IS {'FALSE' if self.expected else 'TRUE'}"

    def query_sql(self, scope: Scope) -> str:
        return scope.count(self.failing_sql())

    def repro_sql(self, scope: Scope) -> str:
        return scope.select(self.failing_sql())

    def start(self, scope: Scope) -> CheckPass:
        return _SQLPass(self, scope)


class _SQLPass(CheckPass):
    def __init__(self, check: CustomSQLCheck, scope: Scope) -> None:
        require("sql", "CustomSQLCheck")
        import duckdb

        self.check, self.scope = check, scope
        self.con = duckdb.connect()
        self.failed = self.total = 0
        self.sample: list[dict[str, Any]] = []
        self.error: str | None = None

    def update(self, batch: pa.RecordBatch) -> None:
        self.total += batch.num_rows
        if self.error is not None or not batch.num_rows:
            return
        import duckdb

        self.con.register(_BATCH, pa.Table.from_batches([batch]))
        where = self.check.failing_sql()
        try:
            ((failed,),) = self.con.sql(f"SELECT count(*) FROM {_BATCH} WHERE {where}").fetchall()
            if failed and len(self.sample) < SAMPLE_LIMIT:
                wanted = SAMPLE_LIMIT - len(self.sample)
                rows = self.con.sql(
                    f"SELECT * FROM {_BATCH} WHERE {where} LIMIT {wanted}"
                ).to_arrow_table()
                self.sample.extend(rows.to_pylist())
        except duckdb.Error as exc:
            self.error = f"{self.check.name}: the SQL expression failed in DuckDB: {exc}"
            return
        finally:
            self.con.unregister(_BATCH)
        self.failed += failed

    def finish(self) -> Finding:
        self.con.close()
        return Finding(self.failed, self.total, self.sample, broken=self.error)


@dataclass(frozen=True, init=False)
class SchemaCheck(PythonCheck):
    """The full Pandera contract of `schema` (a `DataFrameModel` or `DataFrameSchema`), by
    `phlo.Validator` (the engine evaluates what it can, Pandera the rest) on the checked rows.
    ``failed_count`` counts failing rows. Its result is named ``pandera_contract``. The rows
    of the checked scope are held in memory (only this check does so)."""

    schema: Any
    severity: Severity = "error"

    def __init__(self, schema: Any, *, severity: Severity = "error") -> None:
        from phlo.validation import Validator

        try:
            validator = Validator(schema)
        except Exception as exc:  # pandera raises many kinds for a bad schema
            raise ConfigError(f"SchemaCheck: schema cannot be used: {exc}") from exc
        object.__setattr__(self, "schema", schema)
        object.__setattr__(self, "severity", severity)
        object.__setattr__(self, "_validator", validator)
        self._check_settings()

    source = "pandera"

    @property
    def name(self) -> str:
        return "pandera_contract"

    def columns(self) -> None:
        return None

    def query_sql(self, scope: Scope) -> str:
        validator = self.__dict__["_validator"]
        checks = [*validator.native_checks, *validator.pandera_checks]
        return f"pandera {validator.plan.schema_name}: " + "; ".join(checks)

    def start(self, scope: Scope) -> CheckPass:
        return _SchemaPass(self, scope)

    def repro_sql(self, scope: Scope) -> str:
        return ""


class _SchemaPass(CheckPass):
    def __init__(self, check: SchemaCheck, scope: Scope) -> None:
        self.check, self.scope = check, scope
        self.batches: list[pa.RecordBatch] = []

    def update(self, batch: pa.RecordBatch) -> None:
        self.batches.append(batch)

    def finish(self) -> Finding:
        table = (
            pa.Table.from_batches(self.batches) if self.batches else self.scope.schema.empty_table()
        )
        report = self.check.__dict__["_validator"].report(table)
        if report.valid:
            return Finding(0, table.num_rows)
        cases = report.failure_cases
        index = cases.column("index")
        failed = table.num_rows if index.null_count else len(pc.unique(index))
        ids = self.scope.id_columns
        sample = []
        for case in cases.slice(0, SAMPLE_LIMIT).to_pylist():
            row = case["index"]
            found = {c: table.column(c)[row].as_py() for c in ids} if row is not None else {}
            sample.append({**found, **{k: case[k] for k in ("column", "check", "failure_case")}})
        summary = "; ".join(
            f"{r['column']}: {r['check']} failed {r['count']}x" for r in report.records
        )
        return Finding(
            min(failed, table.num_rows),
            table.num_rows,
            sample,
            details={"failures": summary},
            repro_sql=_rows_by_id(self.scope, sample),
        )


def _rows_by_id(scope: Scope, sample: list[dict[str, Any]]) -> str:
    """The sampled rows, selected by their id columns (when the table has them)."""
    if not scope.id_columns:
        return ""
    keys = {tuple(r.get(c) for c in scope.id_columns) for r in sample if scope.id_columns[0] in r}
    if not keys:
        return ""
    columns = ", ".join(ident(c) for c in scope.id_columns)
    rows = ", ".join(
        "(" + ", ".join(literal(v) for v in key) + ")" for key in sorted(keys, key=str)
    )
    return scope.select(f"({columns}) IN ({rows})")


Reconciliation = Literal["rowcount_parity", "rowcount_gte", "key_parity"]


@dataclass(frozen=True, init=False)
class ReconciliationCheck(PythonCheck):
    """Parity with `source_table` over the same partitions (`partition_column` of the source):
    ``rowcount_parity`` (row counts differ by at most `tolerance`, a fraction of the source's),
    ``rowcount_gte`` (at least ``(1 - tolerance)`` times the source's rows) or ``key_parity``
    (the same `key_columns` values on both sides; ``failed_count`` counts rows whose key the
    other side lacks). `where_clause`, a SQL predicate on the source (DuckDB's dialect), keeps
    only the source rows that should reach the table, e.g. ``"status <> 'test'"``."""

    source_table: str
    partition_column: str = "_phlo_partition_date"
    check_type: Reconciliation = "rowcount_parity"
    tolerance: float = 0.0
    key_columns: list[str] | None = None
    where_clause: str | None = None
    severity: Severity = "error"

    def __init__(
        self,
        source_table: str,
        partition_column: str = "_phlo_partition_date",
        check_type: Reconciliation = "rowcount_parity",
        tolerance: float = 0.0,
        key_columns: Sequence[str] | None = None,
        where_clause: str | None = None,
        *,
        severity: Severity = "error",
    ) -> None:
        if not isinstance(source_table, str) or "." not in source_table:
            raise ConfigError(
                f"ReconciliationCheck: source_table must be namespace.table, not {source_table!r}"
            )
        if check_type not in ("rowcount_parity", "rowcount_gte", "key_parity"):
            raise ConfigError(
                "ReconciliationCheck: check_type must be rowcount_parity, rowcount_gte or "
                f"key_parity, not {check_type!r}"
            )
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance < 0:
            raise ConfigError(
                f"ReconciliationCheck: tolerance must be a non-negative fraction, not {tolerance!r}"
            )
        if check_type == "key_parity":
            if isinstance(key_columns, str):
                key_columns = [key_columns]
            if not key_columns:
                raise ConfigError("ReconciliationCheck: key_parity needs key_columns")
            key_columns = list(key_columns)
        if where_clause is not None and (
            not isinstance(where_clause, str) or not where_clause.strip()
        ):
            raise ConfigError(
                "ReconciliationCheck: where_clause must be a SQL predicate on the source, "
                f"e.g. \"status <> 'test'\", not {where_clause!r}"
            )
        object.__setattr__(self, "source_table", source_table)
        object.__setattr__(self, "partition_column", partition_column)
        object.__setattr__(self, "check_type", check_type)
        object.__setattr__(self, "tolerance", tolerance)
        object.__setattr__(self, "key_columns", key_columns)
        object.__setattr__(self, "where_clause", where_clause)
        object.__setattr__(self, "severity", severity)
        self._check_settings()

    @property
    def name(self) -> str:
        kind = [] if self.check_type == "rowcount_parity" else [self.check_type]
        return check_name("reconciliation", *kind, self.source_table)

    def columns(self) -> list[str]:
        return list(self.key_columns or [])

    def source_scope_sql(self, scope: Scope) -> str:
        """The source rows compared: the scope's partitions (on the source's partition column)
        that pass `where_clause`."""
        scoped = scope.where_sql_for(self.partition_column)
        return f"{scoped} AND ({self.where_clause})" if self.where_clause else scoped

    def passes(self, finding: Finding) -> bool:
        if finding.broken is not None:
            return False
        if self.check_type == "key_parity":
            return finding.failed_count <= self.tolerance * finding.total_count
        source = int(finding.details["source_count"])
        target = finding.total_count
        if self.check_type == "rowcount_gte":
            return target >= source * (1 - self.tolerance)
        return abs(target - source) <= self.tolerance * source

    def query_sql(self, scope: Scope) -> str:
        source = relation(self.source_table)
        return (
            f"SELECT (SELECT count(*) FROM {scope.relation} WHERE {scope.where_sql}) AS target_rows, "
            f"(SELECT count(*) FROM {source} WHERE {self.source_scope_sql(scope)}) AS source_rows"
        )

    def repro_sql(self, scope: Scope) -> str:
        if self.check_type != "key_parity" or not self.key_columns:
            return self.query_sql(scope)
        source = relation(self.source_table)
        same = " AND ".join(
            f"s.{ident(c)} IS NOT DISTINCT FROM t.{ident(c)}" for c in self.key_columns
        )
        return (
            f"SELECT 'target' AS side, t.* FROM {scope.relation} t WHERE {scope.where_sql} "
            f"AND NOT EXISTS (SELECT 1 FROM {source} s WHERE {self.source_scope_sql(scope)} AND {same}) "
            f"UNION ALL BY NAME SELECT 'source' AS side, s.* FROM {source} s "
            f"WHERE {self.source_scope_sql(scope)} AND NOT EXISTS (SELECT 1 FROM {scope.relation} t "
            f"WHERE {scope.where_sql} AND {same}) LIMIT {REPRO_LIMIT}"
        )

    def start(self, scope: Scope) -> CheckPass:
        return _ReconciliationPass(self, scope)


class _ReconciliationPass(CheckPass):
    def __init__(self, check: ReconciliationCheck, scope: Scope) -> None:
        self.check, self.scope = check, scope
        self.total = 0
        self.keys: list[pa.RecordBatch] = []

    def update(self, batch: pa.RecordBatch) -> None:
        self.total += batch.num_rows
        if self.check.key_columns:
            self.keys.append(batch.select(self.check.key_columns))

    def finish(self) -> Finding:
        check, scope = self.check, self.scope
        keys = check.key_columns
        try:
            source_keys, source_count = self._source_rows()
        except Exception as exc:  # a missing source table or column: the check fails, named
            return Finding(0, self.total, broken=f"{check.name}: cannot read the source: {exc}")
        details: dict[str, Any] = {"source_count": source_count}
        if not keys:
            return Finding(abs(self.total - source_count), self.total, details=details)
        assert source_keys is not None
        fields = [scope.field(k) for k in keys]
        target = pa.Table.from_batches(self.keys, schema=pa.schema([f for f in fields if f]))
        source_keys = source_keys.cast(target.schema)
        only_target = target.join(source_keys, keys, join_type="left anti")
        only_source = source_keys.join(target, keys, join_type="left anti")
        sample = [{"side": "target", **r} for r in only_target.slice(0, SAMPLE_LIMIT).to_pylist()]
        room = SAMPLE_LIMIT - len(sample)
        sample += [{"side": "source", **r} for r in only_source.slice(0, room).to_pylist()]
        failed = only_target.num_rows + only_source.num_rows
        return Finding(failed, self.total, sample, details=details)

    def _source_rows(self) -> tuple[pa.Table | None, int]:
        """The source's key columns (None without `key_columns`) and row count, in scope: a
        pruned phlo scan, or DuckDB over the source when `where_clause` filters it."""
        check, scope = self.check, self.scope
        keys = check.key_columns
        if check.where_clause:
            select = ", ".join(ident(k) for k in keys) if keys else "count(*) AS n"
            query = f"SELECT {select} FROM {relation(check.source_table)} WHERE {check.source_scope_sql(scope)}"
            rows = scope.lakehouse.sql(query, ref=scope.ref).to_arrow_table()
            return (rows, rows.num_rows) if keys else (None, int(rows.column("n")[0].as_py()))
        source = scope.lakehouse.table(check.source_table, scope.ref)
        scan = source.scan(
            keys or [source.schema.names[0]],
            scope.filters_for(check.partition_column, source.schema),
        )
        if keys:
            table = scan.to_arrow()
            return table, table.num_rows
        return None, sum(b.num_rows for b in scan.to_batches())
