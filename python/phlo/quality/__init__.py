"""Data quality: `@phlo_quality` and its checks, computed by the engine in one pass over the
checked partition, each giving a `CheckResult` with the metadata contract (docs/quality.md)."""

from phlo.quality.base import CheckPass, Finding, PythonCheck, QualityCheck, RowCheck, Scope
from phlo.quality.checks import (
    AcceptedValuesCheck,
    CountCheck,
    FreshnessCheck,
    NullCheck,
    PatternCheck,
    RangeCheck,
    UniqueCheck,
)
from phlo.quality.contract import CheckResult
from phlo.quality.custom import CustomSQLCheck, ReconciliationCheck, SchemaCheck
from phlo.quality.decorator import QualityDefinition, phlo_quality
from phlo.quality.duck import duckdb_connection

__all__ = [
    "AcceptedValuesCheck",
    "CheckPass",
    "CheckResult",
    "CountCheck",
    "CustomSQLCheck",
    "Finding",
    "FreshnessCheck",
    "NullCheck",
    "PatternCheck",
    "PythonCheck",
    "QualityCheck",
    "QualityDefinition",
    "RangeCheck",
    "ReconciliationCheck",
    "RowCheck",
    "SchemaCheck",
    "Scope",
    "UniqueCheck",
    "duckdb_connection",
    "phlo_quality",
]
