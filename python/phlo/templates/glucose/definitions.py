"""The project's Dagster code location: ``dagster dev -f definitions.py`` (or ``phlo dev``)."""

from pathlib import Path

import phlo.dagster

defs = phlo.dagster.definitions(Path(__file__).parent)
