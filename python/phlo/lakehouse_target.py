"""Where a project's lakehouse lives: its settings resolved to the three things
`phlo.Lakehouse.connect` takes (a catalog URI, a warehouse URI, Iceberg-style properties), and
the one function everything that opens the project's lakehouse goes through.

>>> target = load_project().lakehouse_target()
>>> target                    # secrets masked
LakehouseTarget(catalog='postgresql://phlo:***@db:5432/phlo', warehouse='s3://lake/wh', ...)
>>> lh = open_lakehouse(target)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

if TYPE_CHECKING:
    from phlo.config import Settings
    from phlo.lakehouse import Lakehouse

__all__ = [
    "SECRET_PROPERTIES",
    "LakehouseTarget",
    "open_lakehouse",
    "open_located",
    "resolve_target",
]

#: Properties whose values are secrets (masked in `repr`).
SECRET_PROPERTIES = frozenset({"s3.secret-access-key", "s3.session-token", "credential", "token"})


@dataclass(frozen=True)
class LakehouseTarget:
    """A catalog URI, a warehouse URI and the properties (``s3.endpoint``, ``credential``,
    …) of one lakehouse."""

    catalog: str
    warehouse: str
    properties: Mapping[str, str] = field(default_factory=dict)
    #: The embedded folder (``catalog.db`` + ``warehouse/``) when the target is exactly that
    #: folder: `open_lakehouse` then uses `Lakehouse.open`. None otherwise.
    folder: Path | None = None

    @classmethod
    def of_folder(cls, folder: Path) -> LakehouseTarget:
        """The embedded lakehouse in `folder`: its ``catalog.db`` and ``warehouse/``."""
        return cls(
            f"sqlite:///{folder / 'catalog.db'}", (folder / "warehouse").as_uri(), {}, folder
        )

    def masked(self) -> dict[str, Any]:
        """The target as plain data, the catalog's password and secret properties ``***``."""
        from phlo.publishing.postgres import redact

        shown = {k: "***" if k in SECRET_PROPERTIES else v for k, v in self.properties.items()}
        return {"catalog": redact(self.catalog), "warehouse": self.warehouse, "properties": shown}

    def scrub(self, text: str) -> str:
        """`text` (an error message) with every secret of the target replaced by ``***``."""
        secrets = [v for k, v in self.properties.items() if k in SECRET_PROPERTIES and v]
        password = urlsplit(self.catalog).password if "://" in self.catalog else None
        for secret in [*secrets, *([password, unquote(password)] if password else [])]:
            text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.masked().items())
        return f"LakehouseTarget({fields})"


def resolve_target(settings: Settings, folder: Path, root: Path) -> LakehouseTarget:
    """The target of `settings`: ``catalog.uri`` (else `folder`/catalog.db) and
    ``storage.warehouse`` or ``storage.bucket``/``prefix`` (else `folder`/warehouse), with
    the storage and catalog properties. Relative ``sqlite:///`` paths are read from `root`,
    the project folder, so that the same phlo.yaml works from any working folder."""
    storage, catalog = settings.storage, settings.catalog
    warehouse = storage.warehouse
    if storage.bucket is not None:
        warehouse = f"s3://{storage.bucket}/{storage.prefix.strip('/')}".rstrip("/")
    uri = catalog.uri
    if uri is None and warehouse is None:
        return LakehouseTarget.of_folder(folder)
    properties: dict[str, str] = {}
    if warehouse is not None and warehouse.startswith("s3://"):
        properties["s3.region"] = storage.region
        if storage.endpoint is not None:
            properties["s3.endpoint"] = storage.endpoint
        path_style = storage.path_style
        if path_style is None:
            path_style = storage.endpoint is not None
        properties["s3.path-style-access"] = "true" if path_style else "false"
        if storage.access_key_id is not None:
            properties["s3.access-key-id"] = storage.access_key_id
        for key, secret in (
            ("s3.secret-access-key", storage.secret_access_key),
            ("s3.session-token", storage.session_token),
        ):
            if secret is not None:
                properties[key] = secret.get_secret_value()
    for key, secret in (("credential", catalog.credential), ("token", catalog.token)):
        if secret is not None:
            properties[key] = secret.get_secret_value()
    if uri is None:
        uri = f"sqlite:///{folder / 'catalog.db'}"
    elif uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        uri = f"sqlite:///{root / uri.removeprefix('sqlite:///')}"
    elif catalog.password is not None and uri.startswith(("postgresql://", "postgres://")):
        uri = _with_password(uri, catalog.password.get_secret_value())
    return LakehouseTarget(uri, warehouse or (folder / "warehouse").as_uri(), properties)


def _with_password(uri: str, password: str) -> str:
    """`uri` with `password` after its user name (a password already in the URI wins)."""
    parts = urlsplit(uri)
    if parts.password is not None or parts.username is None:
        return uri
    netloc = f"{parts.username}:{quote(password, safe='')}@{parts.netloc.split('@', 1)[1]}"
    return parts._replace(netloc=netloc).geturl()


def open_lakehouse(target: LakehouseTarget) -> Lakehouse:
    """The lakehouse of `target`: `Lakehouse.open` on the embedded folder, else
    `Lakehouse.connect` (created on first use either way)."""
    from phlo.lakehouse import Lakehouse

    if target.folder is not None:
        return Lakehouse.open(target.folder)
    return Lakehouse.connect(target.catalog, target.warehouse, dict(target.properties))


def open_located(folder: str, project: str = "") -> Lakehouse:
    """The lakehouse a process was told about by a string (a Dagster run's tags, dbt's
    plugin config): the settings of the project folder `project` when given — each process
    resolves them and reads their secrets itself — else the lakehouse folder `folder`."""
    from phlo.config import load_project
    from phlo.lakehouse import Lakehouse

    if project:
        return load_project(project).open_lakehouse()
    return Lakehouse.open(folder)
