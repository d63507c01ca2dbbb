"""dbt integration. `phlo.dbt.dbt_schema.dbt_model_to_pandera` turns a dbt model's YAML into a
Pandera model (the seed's import path)."""

from phlo.dbt.dbt_schema import dbt_model_to_pandera

__all__ = ["dbt_model_to_pandera"]
