"""A phlo project's settings: the folder holding `phlo.yaml`, what that file says, and what
`.phlo/.env.local`, the environment and the command line change.

```yaml
# phlo.yaml (every key optional)
profile: embedded             # or scaled (object storage + a network catalog)
lakehouse: .phlo              # the embedded lakehouse folder, relative to the project root
engine: duckdb                # the SQL engine of dbt: duckdb, or trino (section trino)
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
profiles:                     # per-profile values over the ones above
  scaled:
    storage: {endpoint: "http://localhost:9000", bucket: lake, region: us-east-1}
    catalog: {uri: "postgresql://phlo@localhost:5432/phlo"}   # or a REST catalog's http(s) URL
    engine: trino
    trino: {host: localhost, port: 8080, user: phlo, catalog: iceberg}
```

The catalog and the warehouse the project's lakehouse lives in resolve to one
`phlo.lakehouse_target.LakehouseTarget` (`ProjectConfig.lakehouse_target()`): the embedded folder
unless ``catalog.uri`` or ``storage.warehouse``/``storage.bucket`` name others.

Precedence, highest first: a command-line flag (`--profile`, `--root`), an environment
variable (`PHLO_<KEY>`, nested keys joined by ``__``: `PHLO_WAP__ENABLED=false`), the same
variable in `<project>/.phlo/.env.local`, the active profile's section of `phlo.yaml`, the rest
of `phlo.yaml`, the default. Environment and `.env.local` are read with pydantic-settings.
`PHLO_POSTGRES_URL` is also read as ``postgres.url``; the standard ``AWS_*`` variables
(`AWS_ACCESS_KEY_ID`, ...) fill the ``storage`` keys no other source sets. A key phlo does not know, or a value of
the wrong form, is a `ConfigError` naming where it came from (file or variable), the key and
what is expected; secrets (passwords, keys, tokens) are never shown.
"""

from __future__ import annotations

import datetime as dt
import difflib
import os
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, SecretStr
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    SettingsConfigDict,
)

from phlo.errors import ConfigError

if TYPE_CHECKING:
    from phlo.lakehouse import Lakehouse
    from phlo.lakehouse_target import LakehouseTarget

__all__ = [
    "ENV_FILE",
    "PROFILES",
    "PROJECT_FILE",
    "ProjectConfig",
    "Settings",
    "WapSettings",
    "find_project_root",
    "is_secret",
    "load_project",
]

PROJECT_FILE = "phlo.yaml"
#: Local overrides (secrets, per-machine paths) beside the lakehouse; never committed.
ENV_FILE = Path(".phlo") / ".env.local"
ENV_PREFIX = "PHLO_"
#: The deployments a profile selects (DESIGN §2).
PROFILES = ("embedded", "scaled")


def _expected(form: str) -> PydanticCustomError:
    return PydanticCustomError("phlo_expected", form)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _expected("a non-empty string")
    return value


def _flag(value: Any) -> bool:
    # Environment values are text; in phlo.yaml only true/false (a quoted 'yes' is a typo).
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if not isinstance(value, bool):
        raise _expected("true or false")
    return value


def _hours(value: Any) -> float:
    try:
        number = float(value) if isinstance(value, str) else value
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int | float) or number < 0:
        raise _expected("a number >= 0")
    return float(number)


def _port(value: Any) -> int:
    try:
        number = int(value) if isinstance(value, str) else value
    except ValueError:
        number = None
    if isinstance(number, bool) or not isinstance(number, int) or not 0 < number < 65536:
        raise _expected("a port number from 1 to 65535")
    return number


def _day(value: Any) -> dt.date:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise _expected("a date like 2024-01-01") from None


def _timezone(value: Any) -> str:
    try:
        zoneinfo.ZoneInfo(_text(value))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _expected("an IANA time zone such as UTC or Europe/Berlin") from None
    return str(value)


def _url(value: Any) -> str:
    text = _text(value)
    if not text.startswith(("http://", "https://")):
        raise _expected("an http:// or https:// URL")
    return text


def _uri(*schemes: str) -> BeforeValidator:
    def check(value: Any) -> str:
        text = _text(value)
        if not text.startswith(schemes):
            raise _expected("a URI starting with " + " or ".join(schemes))
        return text

    return BeforeValidator(check)


def _choice(*choices: str) -> BeforeValidator:
    def check(value: Any) -> str:
        if value not in choices:
            raise _expected(" or ".join(repr(c) for c in choices))
        return str(value)

    return BeforeValidator(check)


Text = Annotated[str, BeforeValidator(_text)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Hours = Annotated[float, BeforeValidator(_hours)]
Port = Annotated[int, BeforeValidator(_port)]
Day = Annotated[dt.date, BeforeValidator(_day)]
TimeZone = Annotated[str, BeforeValidator(_timezone)]
Url = Annotated[str, BeforeValidator(_url)]
Secret = Annotated[SecretStr, BeforeValidator(_text)]
CatalogUri = Annotated[
    str, _uri("sqlite:///", "postgresql://", "postgres://", "http://", "https://")
]
WarehouseUri = Annotated[str, _uri("file:///", "s3://")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PartitionSettings(_Section):
    start: Day = dt.date(2024, 1, 1)
    timezone: TimeZone = "UTC"


class WapSettings(_Section):
    """Write-Audit-Publish: see `phlo.wap`."""

    enabled: Flag = True
    target: Text = "main"
    branch_retention_hours: Hours = 24.0


class ScheduleSettings(_Section):
    default_status: Annotated[Literal["running", "stopped"], _choice("running", "stopped")] = (
        "running"
    )


class PostgresSettings(_Section):
    #: Where `phlo.publishing` publishes marts; a password in it is never shown.
    url: Text | None = None


class StorageSettings(_Section):
    """Where the warehouse (data and metadata files) lives: `warehouse` as a URI, or an
    S3-compatible object store's `bucket` and `prefix`; None of both: the embedded folder."""

    warehouse: WarehouseUri | None = None  # file:///dir or s3://bucket/prefix
    endpoint: Url | None = None  # None: AWS S3 itself
    bucket: Text | None = None
    prefix: str = ""
    region: Text = "us-east-1"
    #: Path-style requests (``http://host/bucket/key``); None: on when an endpoint is set, as
    #: local servers (MinIO, SeaweedFS) need.
    path_style: Flag | None = None
    access_key_id: Text | None = None
    secret_access_key: Secret | None = None
    session_token: Secret | None = None


class CatalogSettings(_Section):
    """The catalog: ``sqlite:///file.db`` (relative paths from the project root),
    ``postgresql://user@host:port/db`` (phlo's SQL catalog, shared) or an Iceberg REST
    catalog's ``http(s)://`` URL; None: the embedded folder's catalog.db."""

    uri: CatalogUri | None = None
    #: The PostgreSQL password, when the URI carries none (keep it in .env.local).
    password: Secret | None = None
    #: REST: OAuth2 client credentials ``client_id:client_secret``.
    credential: Secret | None = None
    #: REST: a bearer token.
    token: Secret | None = None


class TrinoSettings(_Section):
    """Scaled profile: the SQL engine of dbt and `phlo sql`."""

    host: Text | None = None
    port: Port = 8080
    user: Text = "phlo"
    password: Secret | None = None
    catalog: Text = "iceberg"


class Settings(BaseSettings):
    """Every setting, validated; the environment is read through this class's fields."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        env_ignore_empty=True,  # PHLO_LAKEHOUSE= (empty) means unset, as a shell user expects
        extra="forbid",
        frozen=True,
    )

    profile: Annotated[Literal["embedded", "scaled"], _choice(*PROFILES)] = "embedded"
    lakehouse: Text = ".phlo"
    engine: Annotated[Literal["duckdb", "trino"], _choice("duckdb", "trino")] = "duckdb"
    namespace: Text = "raw"
    partitions: PartitionSettings = PartitionSettings()
    wap: WapSettings = WapSettings()
    schedules: ScheduleSettings = ScheduleSettings()
    postgres: PostgresSettings = PostgresSettings()
    storage: StorageSettings = StorageSettings()
    catalog: CatalogSettings = CatalogSettings()
    trino: TrinoSettings = TrinoSettings()


@dataclass(frozen=True)
class ProjectConfig:
    """A project's effective settings, with defaults filled in."""

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
    postgres_url: str | None = field(default=None, repr=False)
    #: ``embedded`` (local folder + SQLite catalog, unless the settings name others) or
    #: ``scaled`` (object storage + a network catalog).
    profile: Literal["embedded", "scaled"] = "embedded"
    #: Every validated setting (the scaled sections too).
    settings: Settings = field(default_factory=Settings, repr=False)
    #: Where each setting that is not a default came from (dotted key → source).
    sources: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def env_file(self) -> Path:
        return self.root / ENV_FILE

    @property
    def lakehouse_path(self) -> Path:
        """The lakehouse folder as an absolute path: the embedded lakehouse, and the local
        folder of staging and Dagster's home whatever the catalog."""
        return self.lakehouse if self.lakehouse.is_absolute() else self.root / self.lakehouse

    def lakehouse_target(self) -> LakehouseTarget:
        """The catalog, warehouse and properties the project's lakehouse is opened with."""
        from phlo.lakehouse_target import resolve_target

        return resolve_target(self.settings, self.lakehouse_path, self.root)

    def open_lakehouse(self) -> Lakehouse:
        """The project's lakehouse (`phlo.Lakehouse`), created on first use."""
        from phlo.lakehouse_target import open_lakehouse

        return open_lakehouse(self.lakehouse_target())


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest folder at or above `start` (default: the current folder) holding
    `phlo.yaml`; `start` itself when none does."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    return here


def load_project(
    project_dir: str | os.PathLike[str] | None = None,
    *,
    profile: str | None = None,
    lakehouse: str | os.PathLike[str] | None = None,
) -> ProjectConfig:
    """The settings of the project at or above `project_dir` (default: the current folder).
    `profile` and `lakehouse` are the command line's flags: they win over everything."""
    root = find_project_root(project_dir)
    file = root / PROJECT_FILE
    raw = _read_yaml(file) if file.is_file() else {}
    base, profiles = _split_profiles(raw, file)
    env_file = root / ENV_FILE
    flags = {k: v for k, v in (("profile", profile), ("lakehouse", lakehouse)) if v is not None}
    upper = [
        _Layer("flag", {k: str(v) for k, v in flags.items()}),
        _environment(),
        _dotenv(env_file),
    ]
    chosen = _pick_profile([*upper, _Layer(str(file), base)])
    for name, section in profiles.items():
        if name != chosen:  # an inactive profile's values must still be well-formed
            _validate([_Layer(str(file), base), _Layer(str(file), section, f"profiles.{name}.")])
    layers = [*upper, _Layer(str(file), profiles.get(chosen, {}), f"profiles.{chosen}.")]
    layers.append(_Layer(str(file), base))
    layers.extend(_aws_layers(env_file))
    settings = _validate(list(reversed(layers)))
    sources = _sources(settings, layers)
    _check_combinations(settings, sources)
    return ProjectConfig(
        root=root,
        file=file if file.is_file() else None,
        lakehouse=Path(settings.lakehouse),
        namespace=settings.namespace,
        partitions_start=settings.partitions.start,
        timezone=settings.partitions.timezone,
        wap=settings.wap,
        schedule_status=settings.schedules.default_status,
        postgres_url=settings.postgres.url,
        profile=settings.profile,
        settings=settings,
        sources=sources,
    )


@dataclass(frozen=True)
class _Layer:
    """One source of settings: a nested mapping and where it came from."""

    origin: str  # "flag", "environment", or a file
    values: Mapping[str, Any]
    prefix: str = ""  # the mapping's place in phlo.yaml (``profiles.scaled.``)
    #: Variables that set a key under another name than ``PHLO_<KEY>`` (`_ALIASES`).
    names: Mapping[tuple[str, ...], str] = field(default_factory=dict)

    def get(self, path: tuple[str, ...]) -> tuple[bool, Any]:
        node: Any = self.values
        for part in path:
            if not isinstance(node, Mapping) or part not in node:
                return False, None
            node = node[part]
        return True, node

    def describe(self, path: tuple[str, ...]) -> str:
        """Where a key of this layer is written: ``phlo.yaml: wap.enabled``,
        ``environment variable PHLO_WAP__ENABLED``, ``flag --root``."""
        dotted = ".".join(path)
        if self.origin == "flag":
            return f"flag --{'root' if dotted == 'lakehouse' else dotted}"
        variable = self.names.get(path) or ENV_PREFIX + "__".join(path).upper()
        if self.origin == "environment":
            return f"environment variable {variable}"
        if self.origin.endswith(".env.local"):
            return f"{self.origin}: {variable}"
        return f"{self.origin}: {self.prefix}{dotted}"


def _read_yaml(file: Path) -> Mapping[str, Any]:
    import yaml

    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from exc
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{file} must hold a mapping of settings, not {type(raw).__name__}")
    return raw


def _split_profiles(
    raw: Mapping[str, Any], file: Path
) -> tuple[dict[str, Any], dict[str, Mapping[str, Any]]]:
    """phlo.yaml without its ``profiles`` section, and that section checked: a mapping of
    known profile names to mappings of settings (no nested ``profile``/``profiles``)."""
    # A section whose keys are all commented out reads as null: the same as absent.
    base = {k: v for k, v in raw.items() if k != "profiles" and v is not None}
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, Mapping):
        raise ConfigError(f"{file}: profiles must be a mapping of profile names to settings")
    for name, section in profiles.items():
        if name not in PROFILES:
            raise ConfigError(
                f"{file}: unknown profile profiles.{name}{_did_you_mean(name, PROFILES)}"
            )
        if section is not None and not isinstance(section, Mapping):
            raise ConfigError(f"{file}: profiles.{name} must be a mapping of settings")
        for key in ("profile", "profiles"):
            if section and key in section:
                raise ConfigError(
                    f"{file}: profiles.{name}.{key} is not allowed; select the profile with "
                    "the top-level profile key, PHLO_PROFILE or --profile"
                )
    return base, {
        str(n): {k: v for k, v in (s or {}).items() if v is not None} for n, s in profiles.items()
    }


#: Variables read under another name than ``PHLO_<KEY>`` (the name publishing documents).
_ALIASES: dict[str, tuple[str, str]] = {"PHLO_POSTGRES_URL": ("postgres", "url")}


def _environment() -> _Layer:
    """``PHLO_*`` variables of the process (pydantic-settings), and the `_ALIASES`."""
    values = dict(EnvSettingsSource(Settings)())
    found = {name: os.environ[name] for name in _ALIASES if os.environ.get(name)}
    return _aliased("environment", values, found)


def _dotenv(file: Path) -> _Layer:
    """``PHLO_*`` lines of `.env.local` (pydantic-settings); other lines belong to other tools.
    A ``PHLO_`` name that is no setting is a typo, and an error."""
    if not file.is_file():
        return _Layer(str(file), {})
    values = DotEnvSettingsSource(Settings, env_file=file)()
    found = {name: values.pop(name.lower()) for name in _ALIASES if values.get(name.lower())}
    known = set(Settings.model_fields)
    for key in values:
        if key not in known and key.startswith(ENV_PREFIX.lower()):
            name = key.removeprefix(ENV_PREFIX.lower())
            raise ConfigError(
                f"{file}: {key.upper()} is no phlo setting{_did_you_mean(name, sorted(known))}"
            )
    return _aliased(str(file), {k: v for k, v in values.items() if k in known}, found)


#: The standard AWS variables, read for the storage keys no other source sets (the
#: environment's over .env.local's; of two names for one key, the first listed).
_AWS_VARIABLES: dict[str, tuple[str, str]] = {
    "AWS_ACCESS_KEY_ID": ("storage", "access_key_id"),
    "AWS_SECRET_ACCESS_KEY": ("storage", "secret_access_key"),
    "AWS_SESSION_TOKEN": ("storage", "session_token"),
    "AWS_REGION": ("storage", "region"),
    "AWS_DEFAULT_REGION": ("storage", "region"),
    "AWS_ENDPOINT_URL_S3": ("storage", "endpoint"),
    "AWS_ENDPOINT_URL": ("storage", "endpoint"),
}


def _aws_layers(env_file: Path) -> list[_Layer]:
    """The `_AWS_VARIABLES` of the environment, then of `env_file`: the lowest layers."""
    lines: dict[str, Any] = {}
    if env_file.is_file():
        lines = dict(DotEnvSettingsSource(Settings, env_file=env_file)())
    sources = [
        ("environment", {n: os.environ.get(n) for n in _AWS_VARIABLES}),
        (str(env_file), {n: lines.get(n.lower()) for n in _AWS_VARIABLES}),
    ]
    layers = []
    for origin, found in sources:
        values: dict[str, dict[str, Any]] = {}
        names: dict[tuple[str, ...], str] = {}
        for name, value in found.items():
            section, key = _AWS_VARIABLES[name]
            if value and key not in values.setdefault(section, {}):
                values[section][key] = value
                names[(section, key)] = name
        layers.append(_Layer(origin, values, names=names))
    return layers


def _aliased(origin: str, values: dict[str, Any], found: Mapping[str, Any]) -> _Layer:
    """A layer of `values`, with the aliased variables in `found` set at their keys (above
    the same key set under its own name)."""
    names: dict[tuple[str, ...], str] = {}
    for name, value in found.items():
        section, key = _ALIASES[name]
        values[section] = {**values.get(section, {}), key: value}
        names[(section, key)] = name
    return _Layer(origin, values, names=names)


def _pick_profile(layers: list[_Layer]) -> str:
    for layer in layers:
        found, value = layer.get(("profile",))
        if found:
            if value not in PROFILES:
                raise ConfigError(
                    f"{layer.describe(('profile',))} must be "
                    f"{' or '.join(repr(p) for p in PROFILES)}, not {value!r}"
                )
            return str(value)
    return "embedded"


def _merge(low: Mapping[str, Any], high: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(low)
    for key, value in high.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _validate(layers: list[_Layer]) -> Settings:
    """`Settings` from `layers` (lowest precedence first); the first error becomes a
    `ConfigError` naming the layer the bad value came from."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _merge(merged, layer.values)
    try:
        return Settings.model_validate(merged)
    except PydanticValidationError as exc:
        raise _config_error(exc.errors()[0], layers) from None


def _config_error(error: Any, layers: list[_Layer]) -> ConfigError:
    path = tuple(str(p) for p in error["loc"])
    layer = next((lay for lay in reversed(layers) if lay.get(path)[0]), layers[-1])
    where = layer.describe(path)
    if error["type"] == "extra_forbidden":
        known = _fields_at(path[:-1])
        return ConfigError(f"{where}: unknown key {'.'.join(path)}{_did_you_mean(path[-1], known)}")
    if error["type"] == "model_type" or error["type"] == "dict_type":
        return ConfigError(f"{where} must be a mapping, not {error['input']!r}")
    shown = repr(error["input"])
    if path in URL_SECRETS and isinstance(error["input"], str):
        from phlo.publishing.postgres import redact

        shown = repr(redact(error["input"]))
    elif is_secret(path):
        shown = "***"
    return ConfigError(f"{where} must be {error['msg']}, not {shown}")


def _fields_at(path: tuple[str, ...]) -> list[str]:
    model: Any = Settings
    for part in path:
        model = model.model_fields[part].annotation
    return sorted(model.model_fields)


def _did_you_mean(name: str, known: Any) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else f"; known: {', '.join(known)}"


#: Settings that are URLs whose password is shown as ``***`` (the rest of the URL is shown).
URL_SECRETS = (("postgres", "url"), ("catalog", "uri"))
_SECRET_KEYS = ("secret_access_key", "session_token", "token", "password", "credential")


def is_secret(path: tuple[str, ...]) -> bool:
    """Whether the setting at `path` holds a secret (never shown; URLs shown redacted)."""
    return path[-1] in _SECRET_KEYS or path in URL_SECRETS


def _sources(settings: Settings, layers: list[_Layer]) -> dict[str, str]:
    """Dotted key → where its value came from, for every key some layer set."""
    found: dict[str, str] = {}
    for key, path in _leaf_paths(settings):
        layer = next((lay for lay in layers if lay.get(path)[0]), None)
        if layer is not None:
            found[key] = layer.describe(path)
    return found


def _leaf_paths(
    model: BaseModel, prefix: tuple[str, ...] = ()
) -> list[tuple[str, tuple[str, ...]]]:
    paths = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = (*prefix, name)
        if isinstance(value, BaseModel):
            paths.extend(_leaf_paths(value, path))
        else:
            paths.append((".".join(path), path))
    return paths


def _check_combinations(settings: Settings, sources: Mapping[str, str]) -> None:
    """What no single key can say wrong: the scaled profile's needs, one warehouse, Trino's
    host when it is the engine."""
    storage = settings.storage
    if storage.warehouse is not None and storage.bucket is not None:
        raise ConfigError(
            f"storage.warehouse ({sources['storage.warehouse']}) and storage.bucket "
            f"({sources['storage.bucket']}) both name the warehouse: keep one "
            "(s3://BUCKET/PREFIX as storage.warehouse, or storage.bucket + storage.prefix)"
        )
    # A password beside no catalog URI is a secret kept for another profile: unused.
    uri = settings.catalog.uri
    if (
        settings.catalog.password is not None
        and uri is not None
        and (not uri.startswith(("postgresql://", "postgres://")) or "@" not in uri)
    ):
        raise ConfigError(
            f"catalog.password ({sources['catalog.password']}) is the password of a PostgreSQL "
            "catalog: catalog.uri must then be postgresql://USER@HOST:PORT/DB"
        )
    missing = []
    if settings.profile == "scaled":
        if storage.warehouse is None and storage.bucket is None:
            missing.append("storage.bucket or storage.warehouse (the object store)")
        if settings.catalog.uri is None:
            missing.append("catalog.uri (postgresql://… or the REST catalog's http(s):// URL)")
    if settings.engine == "trino" and settings.trino.host is None:
        missing.append("trino.host (the Trino coordinator, as engine is trino)")
    if missing:
        raise ConfigError(
            f"profile {settings.profile!r} ({sources.get('profile', 'default')}) needs "
            f"{', '.join(missing)}: set them under profiles.{settings.profile} in phlo.yaml"
        )
