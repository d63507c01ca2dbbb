"""The services a project's scaled shape runs on, generated from its settings: Trino's
catalog file and dbt-trino profile (`phlo.services.trino`), and a docker compose stack
(`phlo.services.stack`, `phlo services init`)."""

from phlo.services.stack import write_stack
from phlo.services.trino import dbt_trino_profile, trino_catalog_properties

__all__ = ["dbt_trino_profile", "trino_catalog_properties", "write_stack"]
