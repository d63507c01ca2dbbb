"""Which ``phlo[...]`` extra brings which library: commands that need one check it first, so
a missing library is ``[missing_extra] ...`` (exit code 5) naming what to install, and
`phlo doctor` lists what is installed."""

from __future__ import annotations

import importlib.util

from phlo.cli import output

__all__ = ["EXTRAS", "missing_modules", "require"]

#: extra → (the modules it must make importable, what it is for).
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "dagster": (("dagster", "dagster_webserver"), "Dagster assets, `phlo materialize`, `phlo dev`"),
    "dlt": (("dlt",), "dlt sources in @phlo_ingestion"),
    "sql": (("duckdb",), "SQL over lakehouse tables (DuckDB)"),
    "dbt": (("dbt", "dagster_dbt"), "dbt transforms"),
    "postgres": (("adbc_driver_postgresql",), "publishing to PostgreSQL"),
    "polars": (("polars",), "polars frames"),
}


def missing_modules(extra: str) -> list[str]:
    """The modules of `extra` that are not installed (found without importing them: dbt
    and Dagster take seconds to import)."""
    missing = []
    for module in EXTRAS[extra][0]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # ValueError: blocked (``sys.modules[name] = None``)
            found = False
        if not found:
            missing.append(module)
    return missing


def require(extra: str, feature: str | None = None) -> None:
    """Raises ``[missing_extra]`` (exit code 5) when a module of `extra` is not installed."""
    missing = missing_modules(extra)
    if missing:
        raise output.CliError(
            "missing_extra",
            f"{feature or EXTRAS[extra][1]} needs {missing[0]!r}, which is not installed",
            output.MISSING_EXTRA,
            hint=f"pip install 'phlo[{extra}]'",
        )
