"""`phlo doctor`: checks the Python, the installed extras, the settings, the lakehouse folder
and (when configured) PostgreSQL, and says what to fix."""

from __future__ import annotations

import difflib
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import click

from phlo._extras import EXTRAS, missing_modules
from phlo.cli import output
from phlo.cli.app import main, state_of
from phlo.config import ENV_PREFIX, ProjectConfig, Settings
from phlo.errors import ConfigError, PhloError
from phlo.lakehouse_target import LakehouseTarget

MINIMUM_PYTHON = (3, 11)
#: libpq waits this long for a server before doctor reports it unreachable.
POSTGRES_TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class Finding:
    check: str
    #: ``ok``; ``warn``: works, but something is missing; ``fail``: must be fixed.
    status: Literal["ok", "warn", "fail"]
    detail: str
    fix: str = ""


@main.command()
@output.json_option
@click.pass_context
def doctor(ctx: click.Context) -> None:
    """Check the environment and the settings; exit code 1 when something must be fixed."""
    findings = [_python(), *_extras()]
    try:
        config = state_of(ctx).config()
    except ConfigError as exc:
        findings.append(Finding("settings", "fail", str(exc), _CONFIG_FIX))
    else:
        findings.append(_settings(config))
        findings.extend(_unknown_variables())
        findings.append(_lakehouse(config, state_of(ctx).root))
        findings.append(_postgres(config))
    failed = any(f.status == "fail" for f in findings)
    if output.is_json(ctx):
        output.print_json({"ok": not failed, "checks": [asdict(f) for f in findings]})
    else:
        for f in findings:
            click.echo(f"{f.status.upper():<5} {f.check:<16} {f.detail}")
            if f.fix:
                click.echo(f"{'':<22} fix: {f.fix}")
        click.echo("something must be fixed" if failed else "all good")
    if failed:
        ctx.exit(output.FAILURES)


_CONFIG_FIX = "correct the key named above (docs/configuration.md lists every setting)"


def _python() -> Finding:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] < MINIMUM_PYTHON:
        return Finding("python", "fail", f"Python {version}", "use Python 3.11 or newer")
    return Finding("python", "ok", f"Python {version} ({sys.executable})")


def _extras() -> list[Finding]:
    findings = []
    for extra, (_modules, purpose) in EXTRAS.items():
        missing = missing_modules(extra)
        if missing:
            findings.append(
                Finding(
                    f"extra {extra}",
                    "warn",
                    f"not installed ({', '.join(missing)} missing): no {purpose}",
                    f"pip install 'phlo[{extra}]'",
                )
            )
        else:
            findings.append(Finding(f"extra {extra}", "ok", purpose))
    return findings


def _settings(config: ProjectConfig) -> Finding:
    where = str(config.file) if config.file else f"no phlo.yaml at or above {config.root}"
    return Finding("settings", "ok", f"{where} (profile {config.profile})")


#: ``PHLO_`` variables phlo reads that are not settings keys.
_OTHER_VARIABLES = {"PHLO_AUTHOR", "PHLO_CATALOG_TOKEN", "PHLO_POSTGRES_URL", "PHLO_PROJECT_DIR"}


def _unknown_variables() -> list[Finding]:
    """A ``PHLO_`` variable in the environment naming no setting is ignored by the settings
    (other tools may own such names), so a typo there would go unnoticed."""
    known = sorted(Settings.model_fields)
    findings = []
    for name in sorted(os.environ):
        key = name.removeprefix(ENV_PREFIX).split("__")[0].lower()
        if name.startswith(ENV_PREFIX) and name not in _OTHER_VARIABLES and key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            meant = f"PHLO_{close[0].upper()}" if close else None
            findings.append(
                Finding(
                    "environment",
                    "warn",
                    f"{name} is no phlo setting and is ignored"
                    + (f" (did you mean {meant}?)" if meant else ""),
                    "rename or unset it (docs/configuration.md lists the settings)",
                )
            )
    return findings


def _lakehouse(config: ProjectConfig, root_flag: Path | None) -> Finding:
    target = config.lakehouse_target()
    if root_flag is None and target.folder is None:
        return _connected(config, target)
    path = root_flag or config.lakehouse_path
    if not path.exists():
        parent = next(p for p in path.parents if p.exists())
        if os.access(parent, os.W_OK):
            return Finding("lakehouse", "ok", f"{path} does not exist yet: created on first use")
        return Finding(
            "lakehouse",
            "fail",
            f"{path} cannot be created: {parent} is not writable",
            f"make {parent} writable, or point lakehouse (phlo.yaml, PHLO_LAKEHOUSE) elsewhere",
        )
    if not path.is_dir():
        return Finding(
            "lakehouse",
            "fail",
            f"{path} is not a folder",
            "point lakehouse (phlo.yaml, PHLO_LAKEHOUSE, --root) at a folder",
        )
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".phlo-doctor-"):
            pass
        if not (path / "catalog.db").exists():  # doctor creates nothing
            return Finding(
                "lakehouse", "ok", f"{path}: writable, no catalog yet: created on first use"
            )
        from phlo.lakehouse import Lakehouse

        lh = Lakehouse.open(path)
        tables = sum(len(lh.tables(ns)) for ns in lh.namespaces())
    except (OSError, PhloError) as exc:
        return Finding(
            "lakehouse",
            "fail",
            f"{path}: {exc}",
            f"make {path} readable and writable by this user, or repair its catalog.db",
        )
    return Finding("lakehouse", "ok", f"{path}: writable, {tables} tables")


def _connected(config: ProjectConfig, target: LakehouseTarget) -> Finding:
    """The catalog and warehouse the settings name, opened (secrets masked)."""
    shown = target.masked()
    where = f"catalog {shown['catalog']}, warehouse {shown['warehouse']}"
    try:
        lh = config.open_lakehouse()
        tables = sum(len(lh.tables(ns)) for ns in lh.namespaces())
    except (OSError, PhloError) as exc:
        return Finding(
            "lakehouse",
            "fail",
            f"{where}: {target.scrub(str(exc))}",
            "check catalog.uri, storage.* and their secrets (phlo config show)",
        )
    return Finding("lakehouse", "ok", f"{where}: {tables} tables")


def _postgres(config: ProjectConfig) -> Finding:
    url = config.postgres_url
    if not url:
        return Finding("postgres", "ok", "not configured (postgres.url): nothing is published")
    from phlo.publishing.postgres import redact

    if missing_modules("postgres"):
        return Finding(
            "postgres",
            "fail",
            f"{redact(url)} is configured but the driver is not installed",
            "pip install 'phlo[postgres]'",
        )
    from phlo.publishing.postgres import connect

    if "connect_timeout" not in url and "://" in url:
        url += ("&" if "?" in url else "?") + f"connect_timeout={POSTGRES_TIMEOUT_SECONDS}"
    try:
        connect(url).close()
    except PhloError as exc:
        return Finding(
            "postgres",
            "fail",
            str(exc),
            "start the server or correct postgres.url / PHLO_POSTGRES_URL "
            "(keep the password in .phlo/.env.local or ~/.pgpass)",
        )
    return Finding("postgres", "ok", f"{redact(url)} reachable")
