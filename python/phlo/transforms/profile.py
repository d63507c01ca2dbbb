"""The dbt profiles phlo generates: you never write a ``profiles.yml``.

- embedded (the default): dbt-duckdb on a DuckDB file of the run, with phlo's plugin
  (`phlo.transforms.duckdb_plugin`) making the lakehouse tables of the run's ref visible;
- scaled: dbt-trino on a Trino catalog of the run's Nessie branch (`trino_profile`,
  `trino_branch_catalog`; documented, not exercised by the tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DATABASE",
    "PLUGIN",
    "PROFILE",
    "TARGET",
    "trino_branch_catalog",
    "trino_profile",
    "write_profile",
]

#: The profile and target names phlo passes to dbt (the project's own ``profile:`` is ignored).
PROFILE = "phlo"
TARGET = "embedded"
#: The dbt-duckdb plugin module (inside phlo: dbt-core imports every top-level ``dbt_*`` module).
PLUGIN = "phlo.transforms.duckdb_plugin"
#: Name of the plugin in the profile.
PLUGIN_ALIAS = "phlo"
#: The name of a build's DuckDB file, which is the database name dbt renders in SQL.
DATABASE = "phlo"


def write_profile(
    folder: Path,
    *,
    duckdb_path: Path,
    lakehouse: Path | None = None,
    project: Path | None = None,
    ref: str = "main",
    relations: Sequence[Mapping[str, Any]] = (),
    threads: int = 1,
    dbt_dir: Path | None = None,
) -> Path:
    """Writes ``<folder>/profiles.yml`` for a build on `duckdb_path` whose plugin shows the
    tables of `lakehouse` at `ref` under the DuckDB `relations` (see the plugin); with
    `project`, of the lakehouse that project's settings name instead (their secrets are read
    by the plugin, never written here). `dbt_dir` (the dbt project folder) stands for the
    working directory a ``dbt`` command would run in (dbt runs in phlo's process, which keeps
    its own): a relative path a model reads is looked for in the working directory, then there,
    and ``external`` materializations are written there. Returns `folder`."""
    options: dict[str, Any] = {
        # Never download an extension at run time.
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    output: dict[str, Any] = {
        "type": "duckdb",
        "path": str(duckdb_path),
        "schema": "main",
        "threads": threads,
        # The plugin creates views once per database connection: keep it open for the build.
        "keep_open": True,
        "config_options": options,
    }
    if dbt_dir is not None:
        options["file_search_path"] = str(dbt_dir.absolute())
        output["external_root"] = str(dbt_dir.absolute())
    if lakehouse is not None:
        output["plugins"] = [
            {
                "module": PLUGIN,
                "alias": PLUGIN_ALIAS,
                "config": {
                    "lakehouse": str(lakehouse),
                    "project": str(project or ""),
                    "ref": ref,
                    "relations": [dict(r) for r in relations],
                },
            }
        ]
    folder.mkdir(parents=True, exist_ok=True)
    profile = {PROFILE: {"target": TARGET, "outputs": {TARGET: output}}}
    (folder / "profiles.yml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def trino_profile(
    *,
    host: str,
    catalog: str,
    port: int = 8080,
    user: str = "phlo",
    schema: str = "main",
    threads: int = 4,
    password_env: str | None = None,
) -> dict[str, Any]:
    """A dbt-trino profile for the scaled deployment (write it with ``yaml.safe_dump`` to a
    ``profiles.yml``). `catalog` is the run's own Trino catalog from `trino_branch_catalog`,
    so every model of the run lands on the run's branch and is published by the same merge as
    the run's ingestions. With `password_env`, dbt logs in with the password in that
    environment variable (LDAP over HTTPS): the profile names the variable, never the
    password."""
    output: dict[str, Any] = {
        "type": "trino",
        "method": "none",
        "host": host,
        "port": port,
        "user": user,
        "database": catalog,
        "schema": schema,
        "threads": threads,
    }
    if password_env is not None:
        output.update(
            method="ldap",
            http_scheme="https",
            password=f"{{{{ env_var('{password_env}') }}}}",
        )
    return {PROFILE: {"target": "scaled", "outputs": {"scaled": output}}}


def trino_branch_catalog(catalog: str, *, branch: str, nessie_uri: str, warehouse: str) -> str:
    """The statement creating a Trino catalog on `branch` of a Nessie catalog (Trino reads a
    Nessie branch through the catalog property ``iceberg.nessie-catalog.ref``, so a run gets a
    catalog of its own; needs ``catalog.management=dynamic`` in Trino's config). Drop it with
    ``DROP CATALOG`` once the run is published."""

    def literal(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    return (
        f'CREATE CATALOG "{catalog}" USING iceberg WITH ('
        f'"iceberg.catalog.type" = {literal("nessie")}, '
        f'"iceberg.nessie-catalog.uri" = {literal(nessie_uri)}, '
        f'"iceberg.nessie-catalog.ref" = {literal(branch)}, '
        f'"iceberg.nessie-catalog.default-warehouse-dir" = {literal(warehouse)})'
    )
