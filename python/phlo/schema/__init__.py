"""Schemas as contracts: Pandera → Iceberg schema, Pandera → validation plan, dbt YAML →
Pandera model.

>>> from phlo.schema import pandera_to_iceberg, validation_plan, dbt_model_to_pandera
"""

from phlo.schema.dbt import dbt_model_to_pandera
from phlo.schema.iceberg import METADATA_COLUMNS, pandera_to_iceberg
from phlo.schema.plan import PanderaCheck, ValidationPlan, validation_plan

__all__ = [
    "METADATA_COLUMNS",
    "PanderaCheck",
    "ValidationPlan",
    "dbt_model_to_pandera",
    "pandera_to_iceberg",
    "validation_plan",
]
