"""Ingestion: `@phlo_ingestion`, its sources (dlt, Arrow-like data, iterables of dicts) and the
run pipeline (extract → stage → validate → merge → publish)."""

from phlo.ingestion.decorator import IngestionDefinition, phlo_ingestion
from phlo.ingestion.result import IngestionResult

__all__ = ["IngestionDefinition", "IngestionResult", "phlo_ingestion"]
