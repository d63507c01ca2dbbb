"""Schemas as contracts: `PhloSchema` (plain annotated contracts), Pandera → Iceberg schema,
Pandera → validation plan, dbt YAML → Pandera model.

>>> from phlo.schema import pandera_to_iceberg, validation_plan, dbt_model_to_pandera
"""

from typing import TYPE_CHECKING, Any

from phlo.schema.dbt import dbt_model_to_pandera
from phlo.schema.iceberg import METADATA_COLUMNS, pandera_to_iceberg
from phlo.schema.plan import PanderaCheck, ValidationPlan, validation_plan

if TYPE_CHECKING:
    from phlo.schema.model import PhloSchema

__all__ = [
    "METADATA_COLUMNS",
    "PanderaCheck",
    "PhloSchema",
    "ValidationPlan",
    "dbt_model_to_pandera",
    "pandera_to_iceberg",
    "validation_plan",
]


def __getattr__(name: str) -> Any:
    if name == "PhloSchema":  # imports Pandera: only when used
        from phlo.schema.model import PhloSchema

        return PhloSchema
    raise AttributeError(f"module 'phlo.schema' has no attribute {name!r}")
