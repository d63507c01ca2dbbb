"""The lakehouse the command line points at, and whether one is there: a command that reads
must not create an empty lakehouse at a mistyped `--root` (or `PHLO_LAKEHOUSE`, `lakehouse`,
``catalog.uri``) and then report "no tables" as if that were the truth."""

from __future__ import annotations

from pathlib import Path

from phlo.cli import output
from phlo.config import ProjectConfig
from phlo.lakehouse_target import LakehouseTarget

__all__ = ["catalog_file", "not_created_yet", "require_existing"]

#: The error code of a lakehouse that is not there (exit code 4, docs/cli.md).
NO_LAKEHOUSE = "no_lakehouse"


def catalog_file(target: LakehouseTarget) -> Path | None:
    """The local file of `target`'s catalog: the folder's ``catalog.db``, or the file of a
    ``sqlite:///`` URI (read as phlo's engine does: always an absolute path). None for a
    catalog server (PostgreSQL, REST), whose existence only a connection could tell."""
    if target.folder is not None:
        return target.folder / "catalog.db"
    if target.catalog.startswith("sqlite:///"):
        rest = target.catalog.removeprefix("sqlite:///").split("?", 1)[0]
        return Path("/") / rest.lstrip("/")
    return None


def not_created_yet(config: ProjectConfig) -> bool:
    """True when `config`'s lakehouse is its project's own (its catalog in a folder inside the
    project, named by its phlo.yaml or by default — not by a flag, the environment or a
    catalog URI; the warehouse may be elsewhere, e.g. S3) and no run has created it yet: a
    report then says so, with the path, instead of failing."""
    source = config.sources.get("lakehouse", str(config.file))
    catalog = catalog_file(config.lakehouse_target())
    if (
        config.file is None
        or "catalog.uri" in config.sources
        or not source.startswith(str(config.file))
        or catalog is None
        or not catalog.resolve().is_relative_to(config.root.resolve())
    ):
        return False
    return not catalog.exists()


def require_existing(target: LakehouseTarget, config: ProjectConfig | None) -> None:
    """Raises `CliError` ``no_lakehouse`` (exit code 4) when `target`'s catalog file does not
    exist; `config` is None when `--root` named the folder (no project settings involved)."""
    catalog = catalog_file(target)
    if catalog is None or catalog.exists():
        return
    if target.folder is not None:
        where = f"no lakehouse at {target.folder}: {catalog} does not exist"
    elif config is not None and "catalog.uri" not in config.sources:
        # The default catalog of the lakehouse folder, with the warehouse elsewhere (e.g. S3).
        where = f"no lakehouse catalog at {catalog}"
    else:
        where = f"no lakehouse catalog at {catalog} (catalog.uri {target.catalog})"
    if config is None:
        source = "flag --root"
    else:  # a catalog.uri of its own, else the lakehouse folder's catalog.db
        key = "catalog.uri" if "catalog.uri" in config.sources else "lakehouse"
        source = config.sources.get(key, f"the default, {config.root}/.phlo")
    raise output.CliError(
        NO_LAKEHOUSE,
        f"{where} (the path comes from {source}); nothing was created",
        output.ERROR,
        hint=_hint(config),
    )


def _hint(config: ProjectConfig | None) -> str:
    fix = (
        "if the path is mistyped, correct --root, PHLO_LAKEHOUSE, the `lakehouse` of phlo.yaml "
        "or the profile's catalog.uri (`phlo config show` prints each and its source)"
    )
    if config is not None and config.file is None:
        return (
            f"{config.root} holds no phlo.yaml: run the command inside a project (or pass "
            f"--project DIR), or create one with `phlo init NAME`; {fix}"
        )
    return f"{fix}; a project's lakehouse is created by its first `phlo materialize`"
