"""The seed's import path for dbt YAML → Pandera (`phlo.schema.dbt` holds the code)."""

from phlo.schema.dbt import dbt_model_to_pandera

__all__ = ["dbt_model_to_pandera"]
