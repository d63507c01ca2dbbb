"""The Dagster code location `phlo dev` serves: the definitions of the project in
``PHLO_PROJECT_DIR`` (set by `phlo dev`), else of the current folder."""

import os

import phlo.dagster

defs = phlo.dagster.definitions(os.environ.get("PHLO_PROJECT_DIR", "."))
