"""The project's Dagster code location (needs `pip install 'phlo[dagster]'`):
`dagster dev -m definitions`, or `phlo dev`, from this folder."""

from pathlib import Path

import phlo.dagster

defs = phlo.dagster.definitions(Path(__file__).parent)
