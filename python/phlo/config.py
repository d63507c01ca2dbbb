"""A phlo project's settings: the folder holding `phlo.yaml` and what that file says.

```yaml
# phlo.yaml (every key optional)
lakehouse: .phlo              # the embedded lakehouse folder, relative to the project root
namespace: raw                # where @phlo_ingestion tables go unless they say otherwise
partitions:
  start: "2024-01-01"         # first daily partition of ingestion assets
  timezone: UTC
wap:
  enabled: true               # every run writes to its own branch and publishes on success
  target: main                # the ref runs publish into
  branch_retention_hours: 24  # finished runs' branches are removed after this
schedules:
  default_status: running     # or stopped
postgres:
  url: postgresql://bi@localhost:5432/analytics   # where marts are published
```

`PHLO_LAKEHOUSE` overrides `lakehouse`; `PHLO_POSTGRES_URL` overrides ``postgres.url`` (keep
passwords there, or in ``~/.pgpass``, rather than in the file). A key phlo does not know, or a value of the wrong form,
is a `ConfigError` naming the file, the key and what is expected.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from phlo.errors import ConfigError

__all__ = ["PROJECT_FILE", "ProjectConfig", "WapSettings", "find_project_root", "load_project"]

PROJECT_FILE = "phlo.yaml"


@dataclass(frozen=True)
class WapSettings:
    """Write-Audit-Publish: see `phlo.wap`."""

    enabled: bool = True
    target: str = "main"
    branch_retention_hours: float = 24.0


@dataclass(frozen=True)
class ProjectConfig:
    """What a project's `phlo.yaml` says, with defaults filled in."""

    #: The project root: the folder holding phlo.yaml (or the folder the search started in).
    root: Path
    #: The file the settings came from; None when the project has no phlo.yaml.
    file: Path | None = None
    lakehouse: Path = Path(".phlo")
    namespace: str = "raw"
    partitions_start: dt.date = dt.date(2024, 1, 1)
    timezone: str = "UTC"
    wap: WapSettings = field(default_factory=WapSettings)
    schedule_status: Literal["running", "stopped"] = "running"
    #: Where `phlo.publishing` publishes marts (``postgres.url``); None when not set.
    postgres_url: str | None = None

    @property
    def lakehouse_path(self) -> Path:
        """The lakehouse folder as an absolute path."""
        return self.lakehouse if self.lakehouse.is_absolute() else self.root / self.lakehouse

    def open_lakehouse(self) -> Any:
        """The project's lakehouse (`phlo.Lakehouse`), created on first use."""
        from phlo.lakehouse import Lakehouse

        return Lakehouse.open(self.lakehouse_path)


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest folder at or above `start` (default: the current folder) holding
    `phlo.yaml`; `start` itself when none does."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    return here


def load_project(project_dir: str | os.PathLike[str] | None = None) -> ProjectConfig:
    """The settings of the project at or above `project_dir` (default: the current folder)."""
    root = find_project_root(project_dir)
    file = root / PROJECT_FILE
    raw: Mapping[str, Any] = {}
    if file.is_file():
        raw = _read_yaml(file)
    reader = _Reader(file, raw)
    lakehouse = os.environ.get("PHLO_LAKEHOUSE") or reader.text("lakehouse", ".phlo")
    partitions = reader.section("partitions", {"start", "timezone"})
    wap = reader.section("wap", {"enabled", "target", "branch_retention_hours"})
    schedules = reader.section("schedules", {"default_status"})
    postgres = reader.section("postgres", {"url"})
    reader.no_other_keys({"lakehouse", "namespace", "partitions", "wap", "schedules", "postgres"})
    timezone = partitions.text("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise partitions.error(
            "timezone", "an IANA time zone such as UTC or Europe/Berlin"
        ) from None
    return ProjectConfig(
        root=root,
        file=file if file.is_file() else None,
        lakehouse=Path(lakehouse),
        namespace=reader.text("namespace", "raw"),
        partitions_start=partitions.date("start", dt.date(2024, 1, 1)),
        timezone=timezone,
        wap=WapSettings(
            enabled=wap.flag("enabled", True),
            target=wap.text("target", "main"),
            branch_retention_hours=wap.number("branch_retention_hours", 24.0),
        ),
        schedule_status=schedules.choice("default_status", ("running", "stopped"), "running"),
        postgres_url=postgres.text("url", "") if "url" in postgres.raw else None,
    )


def _read_yaml(file: Path) -> Mapping[str, Any]:
    import yaml

    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{file} must hold a mapping of settings, not {type(raw).__name__}")
    return raw


class _Reader:
    """Typed access to one mapping of the file; errors name the file and the dotted key."""

    def __init__(self, file: Path, raw: Mapping[str, Any], prefix: str = "") -> None:
        self.file, self.raw, self.prefix = file, raw, prefix

    def error(self, key: str, expected: str) -> ConfigError:
        value = self.raw.get(key)
        return ConfigError(f"{self.file}: {self.prefix}{key} must be {expected}, not {value!r}")

    def section(self, key: str, keys: set[str]) -> _Reader:
        value = self.raw.get(key) or {}
        if not isinstance(value, Mapping):
            raise self.error(key, "a mapping")
        section = _Reader(self.file, value, f"{self.prefix}{key}.")
        section.no_other_keys(keys)
        return section

    def no_other_keys(self, known: set[str]) -> None:
        for key in self.raw:
            if key not in known:
                close = difflib.get_close_matches(str(key), sorted(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else f"; known: {sorted(known)}"
                raise ConfigError(f"{self.file}: unknown key {self.prefix}{key}{hint}")

    def text(self, key: str, default: str) -> str:
        value = self.raw.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.error(key, "a non-empty string")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "true or false")
        return value

    def number(self, key: str, default: float) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.error(key, "a number >= 0")
        return float(value)

    def date(self, key: str, default: dt.date) -> dt.date:
        value = self.raw.get(key, default)
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise self.error(key, "a date like 2024-01-01") from None

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> Any:
        value = self.raw.get(key, default)
        if value not in choices:
            raise self.error(key, " or ".join(repr(c) for c in choices))
        return value
