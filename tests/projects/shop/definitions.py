"""The project's Dagster code location: ``dagster dev -m definitions`` from this folder."""

from pathlib import Path

import phlo.dagster

defs = phlo.dagster.definitions(Path(__file__).parent)
