"""phlo: a data lakehouse framework with a Rust engine and a Python face.

>>> import phlo
>>> lh = phlo.Lakehouse.open(".phlo")
"""

from typing import TYPE_CHECKING, Any

from phlo import errors
from phlo._native import __version__
from phlo.ingestion import IngestionDefinition, IngestionResult, phlo_ingestion
from phlo.lakehouse import (
    AppendResult,
    CompactResult,
    DeleteResult,
    DeleteStats,
    ExpireResult,
    Lakehouse,
    LogEntry,
    ManifestRewrite,
    OrphanFiles,
    PartitionField,
    RefDiff,
    RefMergeResult,
    RowDiff,
    Scan,
    Snapshot,
    Table,
    Transaction,
)
from phlo.merge import MergeResult, dedupe, merge_to_iceberg
from phlo.quality import (
    AcceptedValuesCheck,
    CheckResult,
    CountCheck,
    CustomSQLCheck,
    FreshnessCheck,
    NullCheck,
    PatternCheck,
    QualityDefinition,
    RangeCheck,
    ReconciliationCheck,
    SchemaCheck,
    UniqueCheck,
    phlo_quality,
)
from phlo.schema import dbt_model_to_pandera, pandera_to_iceberg
from phlo.stage import StageResult, stage
from phlo.validation import ValidationReport, Validator, validate

if TYPE_CHECKING:
    from phlo.schema.model import PhloSchema

__all__ = [
    "AcceptedValuesCheck",
    "AppendResult",
    "CheckResult",
    "CompactResult",
    "CountCheck",
    "CustomSQLCheck",
    "DeleteResult",
    "DeleteStats",
    "ExpireResult",
    "FreshnessCheck",
    "IngestionDefinition",
    "IngestionResult",
    "Lakehouse",
    "LogEntry",
    "ManifestRewrite",
    "MergeResult",
    "NullCheck",
    "OrphanFiles",
    "PartitionField",
    "PatternCheck",
    "PhloSchema",
    "QualityDefinition",
    "RangeCheck",
    "ReconciliationCheck",
    "RefDiff",
    "RefMergeResult",
    "RowDiff",
    "Scan",
    "SchemaCheck",
    "Snapshot",
    "StageResult",
    "Table",
    "Transaction",
    "UniqueCheck",
    "ValidationReport",
    "Validator",
    "__version__",
    "dbt_model_to_pandera",
    "dedupe",
    "errors",
    "merge_to_iceberg",
    "pandera_to_iceberg",
    "phlo_ingestion",
    "phlo_quality",
    "stage",
    "validate",
]


def __getattr__(name: str) -> Any:
    # PhloSchema subclasses a Pandera model: import Pandera (and pandas) only when it is used.
    if name == "PhloSchema":
        from phlo.schema.model import PhloSchema

        return PhloSchema
    raise AttributeError(f"module 'phlo' has no attribute {name!r}")
