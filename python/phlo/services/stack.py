"""`phlo services init`: the files that run a project's scaled shape with docker compose —
PostgreSQL (phlo's catalog and Dagster's storage), MinIO, phlo's catalog served as an Iceberg
REST catalog, Trino, Dagster's webserver and daemon — from the templates beside this module
and the project's settings (bucket, prefix, region, Trino catalog and port).

Generated and checked (YAML, structure) by the tests, never run by them: there is no Docker
on phlo's test machines.
"""

from __future__ import annotations

import dataclasses
import os
import re
from importlib import metadata
from pathlib import Path

import yaml

from phlo._native import __version__
from phlo.config import CatalogSettings, ProjectConfig, StorageSettings, TrinoSettings
from phlo.errors import ConfigError, WouldOverwriteError
from phlo.services.trino import dbt_trino_profile, trino_catalog_properties

__all__ = ["CATALOG_URI", "TEMPLATES", "write_stack"]

TEMPLATES = Path(__file__).parent / "templates"
#: Where the phlo processes inside the stack find the catalog, the object store and Trino.
CATALOG_URI = "postgresql://phlo@postgres:5432/phlo_catalog"
REST_URI = "http://catalog:8181/iceberg"
S3_ENDPOINT = "http://minio:9000"
#: Template file → the file written (relative to the services folder).
_FILES = {
    "docker-compose.yml": "docker-compose.yml",
    "env.example": ".env.example",
    "Dockerfile": "Dockerfile",
    "Dockerfile.dockerignore": "Dockerfile.dockerignore",
    "dagster.yaml": "dagster.yaml",
    "postgres-init.sql": "postgres-init.sql",
}
#: ``__BUCKET__`` in a template; not the ``__`` inside ``PHLO_STORAGE__REGION``.
_TOKEN = re.compile(r"(?<![A-Za-z0-9_])__[A-Z][A-Z_]*?__(?![A-Za-z0-9_])")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def write_stack(
    config: ProjectConfig,
    folder: str | os.PathLike[str],
    *,
    force: bool = False,
    bind: str = "127.0.0.1",
) -> list[Path]:
    """Writes the stack of `config`'s project into `folder` and returns the files written
    (relative to it). Refuses (`WouldOverwriteError`, nothing written) when one exists,
    unless `force`."""
    folder = Path(folder).resolve()
    stack = stack_config(config)
    trino = stack.settings.trino
    files = {
        target: _render((TEMPLATES / template).read_text(), _tokens(config, stack, folder, bind))
        for template, target in _FILES.items()
    }
    files[f"trino/catalog/{trino.catalog}.properties"] = trino_catalog_properties(
        stack, rest_uri=REST_URI
    )
    files["dbt/profiles.yml"] = yaml.safe_dump(dbt_trino_profile(stack), sort_keys=False)
    existing = [name for name in files if (folder / name).exists()]
    if existing and not force:
        raise WouldOverwriteError(
            f"{folder} already holds {', '.join(existing)}: phlo services init replaces "
            "them only with --force (or choose another folder with --dir)"
        )
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return [Path(name) for name in files]


def stack_config(config: ProjectConfig) -> ProjectConfig:
    """`config` as the phlo processes inside the stack see it: the scaled profile on the
    stack's PostgreSQL catalog, MinIO (the settings' bucket and prefix, else ``lake`` /
    ``warehouse``) and Trino — the values docker-compose.yml sets in their environment."""
    settings = config.settings
    warehouse = config.lakehouse_target().warehouse
    if not warehouse.startswith("s3://"):
        warehouse = "s3://lake/warehouse"
    bucket = warehouse.removeprefix("s3://").split("/", 1)[0]
    if not _BUCKET.match(bucket):
        raise ConfigError(f"{bucket!r} is no S3 bucket name (3-63 of a-z 0-9 . -): fix storage")
    if not _NAME.match(settings.trino.catalog):
        raise ConfigError(
            f"trino.catalog {settings.trino.catalog!r} must be lowercase letters, digits and _ "
            "(it names Trino's catalog file)"
        )
    stack = settings.model_copy(
        update={
            "profile": "scaled",
            "storage": StorageSettings(
                warehouse=warehouse,
                endpoint=S3_ENDPOINT,
                region=settings.storage.region,
                path_style=True,
            ),
            "catalog": CatalogSettings(uri=CATALOG_URI),
            "trino": TrinoSettings(
                host="trino", user=settings.trino.user, catalog=settings.trino.catalog
            ),
        }
    )
    return dataclasses.replace(config, profile="scaled", settings=stack)


def _tokens(config: ProjectConfig, stack: ProjectConfig, folder: Path, bind: str) -> dict[str, str]:
    warehouse = stack.settings.storage.warehouse or ""
    context = os.path.relpath(config.root, folder)
    return {
        "__PROJECT__": config.root.name,
        "__NAME__": re.sub(r"[^a-z0-9_-]", "-", config.root.name.lower()).strip("-_") or "phlo",
        "__PHLO_VERSION__": __version__,
        "__DAGSTER_POSTGRES_VERSION__": _dagster_library_version(),
        "__WAREHOUSE__": warehouse,
        "__BUCKET__": warehouse.removeprefix("s3://").split("/", 1)[0],
        "__REGION__": stack.settings.storage.region,
        "__TRINO_CATALOG__": stack.settings.trino.catalog,
        "__BIND__": bind,
        "__POSTGRES_PORT__": "5432",
        "__MINIO_PORT__": "9000",
        "__MINIO_CONSOLE_PORT__": "9001",
        "__CATALOG_PORT__": "8181",
        "__TRINO_PORT__": str(config.settings.trino.port),
        "__DAGSTER_PORT__": "3000",
        "__CONTEXT__": context,
        "__DOCKERFILE__": os.path.relpath(folder / "Dockerfile", config.root),
    }


def _dagster_library_version() -> str:
    """dagster-postgres's release beside the installed Dagster (1.13.27 ↔ 0.29.27)."""
    from phlo._extras import require

    require("dagster", "phlo services init")
    major, minor, patch = metadata.version("dagster").split(".")[:3]
    return f"{int(major) - 1}.{int(minor) + 16}.{patch}"


def _render(template: str, tokens: dict[str, str]) -> str:
    return _TOKEN.sub(lambda m: tokens[m.group(0)], template)
