"""Optional dependencies: which ``phlo[...]`` extra brings which library, and the one check
every feature that needs one makes before importing it.

`import phlo` needs only the core install; `phlo.dagster`, dlt sources, DuckDB SQL, dbt,
PostgreSQL publishing and polars scans each call `require` first, so a missing library is a
`MissingExtraError` saying what to install rather than a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib.util

from phlo.errors import MissingExtraError

__all__ = ["EXTRAS", "missing_modules", "require"]

#: extra → (the modules it makes importable, what it is for).
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "dagster": (
        ("dagster", "dagster_webserver"),
        "Dagster assets, schedules and sensors (phlo.dagster), `phlo materialize`, `phlo dev`",
    ),
    "dlt": (("dlt",), "dlt sources in @phlo_ingestion"),
    "sql": (("duckdb",), "SQL over lakehouse tables (DuckDB)"),
    "dbt": (("dbt.version", "dbt.adapters.duckdb", "dagster_dbt"), "dbt transforms"),
    "postgres": (("adbc_driver_postgresql", "duckdb"), "publishing to PostgreSQL"),
    "polars": (("polars",), "polars frames"),
}


def missing_modules(extra: str) -> list[str]:
    """The modules of `extra` that are not installed, found without importing them (dbt and
    Dagster take seconds to import)."""
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
    """Raises `MissingExtraError` naming the extra when a module of `extra` is not installed.
    `feature` says what needed it (default: the extra's purpose)."""
    missing = missing_modules(extra)
    if missing:
        purpose = EXTRAS[extra][1]
        raise MissingExtraError(
            f"{feature or purpose} needs {missing[0]!r}, which is not installed: "
            f"pip install 'phlo[{extra}]'",
            extra=extra,
        )
