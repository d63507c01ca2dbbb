"""Import-time checks of `@phlo_ingestion` settings (each a `ConfigError` naming the
parameter)."""

from __future__ import annotations

from phlo.ingestion.decorator import IngestionDefinition


def check_definition(definition: IngestionDefinition) -> None:
    """Raises `ConfigError` for the first setting that cannot work. (TO BE BUILT.)"""
