"""Optional dependencies: which ``phlo[...]`` extra brings which library, and the one check
every feature that needs one makes before importing it.

`import phlo` needs only the core install; `phlo.dagster`, dlt sources, DuckDB SQL, dbt,
PostgreSQL publishing and polars scans each call `require` first, so a missing library is a
`MissingExtraError` saying what to install rather than a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib

from phlo.errors import MissingExtraError

__all__ = ["EXTRAS", "require"]

#: extra → (the modules it makes importable, what it is for).
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "dagster": (("dagster",), "Dagster assets, schedules and sensors (phlo.dagster)"),
    "dlt": (("dlt",), "dlt sources in @phlo_ingestion"),
    "sql": (("duckdb",), "SQL over lakehouse tables (DuckDB)"),
    "dbt": (("dbt.version", "dbt.adapters.duckdb", "dagster_dbt"), "dbt transforms"),
    "postgres": (("adbc_driver_postgresql", "duckdb"), "publishing to PostgreSQL"),
    "polars": (("polars",), "polars frames"),
}


def require(extra: str, feature: str | None = None) -> None:
    """Imports the modules of `extra`; raises `MissingExtraError` naming the extra when one
    is not installed. `feature` says what needed it (default: the extra's purpose)."""
    modules, purpose = EXTRAS[extra]
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            missing = exc.name or module
            raise MissingExtraError(
                f"{feature or purpose} needs {missing!r}, which is not installed: "
                f"pip install 'phlo[{extra}]'",
                extra=extra,
            ) from exc
