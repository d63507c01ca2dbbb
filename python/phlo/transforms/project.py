"""A phlo project's dbt project (``workflows/transforms/dbt``): its parsed manifest, and what
phlo makes of each node — the lakehouse table a model is written to, its medallion group, how it
is materialized."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from phlo.transforms.runner import LOCK, run_dbt

if TYPE_CHECKING:
    from dbt.contracts.graph.manifest import Manifest as DbtManifest

__all__ = [
    "DBT_DIR",
    "DbtProject",
    "Node",
    "build_manifest",
    "find_dbt_project",
]

#: Where a phlo project keeps its dbt project.
DBT_DIR = Path("workflows") / "transforms" / "dbt"
#: Medallion layers: a model in a folder of this name belongs to that group.
LAYERS = ("bronze", "silver", "gold", "marts")
#: Name prefixes that place a model in a group when neither meta nor folder says.
PREFIXES = {"stg_": "silver", "dim_": "gold", "fct_": "gold", "mrt_": "marts"}
#: Groups of nodes no rule places.
DEFAULT_GROUP = {"seed": "seeds", "snapshot": "snapshots"}
FALLBACK_GROUP = "transforms"
#: Node types that become Dagster assets.
ASSET_TYPES = ("model", "seed", "snapshot")
#: Folders of a dbt project that do not change what it defines.
_NOT_SOURCES = {"target", "logs", ".user.yml"}
#: Projects whose parsed manifest a process keeps (one, but in tests and notebooks).
_CACHED_PROJECTS = 4
#: By dbt project folder: what it was parsed from (files, environment) and dbt's manifest.
_MANIFESTS: dict[Path, tuple[tuple[str, int], bytes]] = {}

#: How phlo writes a node to the lakehouse: ``replace`` (table, seed: the model's rows become the
#: table's contents), ``upsert`` (incremental, snapshot: the rows the build added or changed are
#: merged by key, or appended without one), ``none`` (view, ephemeral: DuckDB only).
WriteMode = Literal["replace", "upsert", "none"]


@dataclass(frozen=True)
class Node:
    """One model, seed or snapshot of the manifest."""

    props: Mapping[str, Any]

    @property
    def unique_id(self) -> str:
        return str(self.props["unique_id"])

    @property
    def name(self) -> str:
        return str(self.props["name"])

    @property
    def resource_type(self) -> str:
        return str(self.props["resource_type"])

    @property
    def config(self) -> Mapping[str, Any]:
        return self.props.get("config") or {}

    @property
    def materialized(self) -> str:
        if self.resource_type in ("seed", "snapshot"):
            return self.resource_type
        return str(self.config.get("materialized") or "view")

    @property
    def write_mode(self) -> WriteMode:
        if self.materialized in ("table", "seed"):
            return "replace"
        if self.materialized in ("incremental", "snapshot"):
            return "upsert"
        return "none"

    @property
    def unique_key(self) -> list[str]:
        """The key an incremental model merges by (empty: append); ``dbt_scd_id`` for
        snapshots (dbt updates their rows' validity in place)."""
        if self.resource_type == "snapshot":
            return ["dbt_scd_id"]
        key = self.config.get("unique_key")
        if not key:
            return []
        return [key] if isinstance(key, str) else [str(k) for k in key]

    @property
    def relation(self) -> tuple[str, str]:
        """The DuckDB schema and name dbt builds the node as."""
        alias = self.props.get("alias") or self.name
        return str(self.props["schema"]), str(alias)

    @property
    def group(self) -> str:
        """``meta.group``, else a bronze/silver/gold/marts folder, else the name's prefix
        (``stg_`` silver, ``dim_``/``fct_`` gold, ``mrt_`` marts)."""
        meta = {**(self.props.get("meta") or {}), **(self.config.get("meta") or {})}
        if meta.get("group"):
            return str(meta["group"])
        for folder in list(self.props.get("fqn", []))[1:-1]:
            if folder in LAYERS:
                return str(folder)
        for prefix, group in PREFIXES.items():
            if self.name.startswith(prefix):
                return group
        return DEFAULT_GROUP.get(self.resource_type, FALLBACK_GROUP)

    @property
    def table(self) -> str:
        """The lakehouse table the node is written to: ``<schema>.<alias>`` where the schema is
        the node's ``+schema`` config, else its group."""
        namespace = self.config.get("schema") or self.group
        return f"{namespace}.{self.relation[1]}"

    @property
    def path(self) -> str:
        return str(self.props.get("original_file_path", ""))


@dataclass(frozen=True)
class DbtProject:
    """The dbt project of a phlo project and its manifest (parsed by `find_dbt_project`)."""

    #: The dbt project folder (holding dbt_project.yml).
    dir: Path
    manifest: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["project_name"])

    def nodes(self) -> Iterator[Node]:
        """The project's own models, seeds and snapshots (not those of packages)."""
        for props in self.manifest["nodes"].values():
            if props["resource_type"] in ASSET_TYPES and props["package_name"] == self.name:
                yield Node(props)

    def node(self, unique_id: str) -> Node:
        return Node(self.manifest["nodes"][unique_id])

    def sources(self) -> Iterator[tuple[str, tuple[str, str]]]:
        """Every source's unique id and relation (schema, identifier): the lakehouse table
        ``schema.identifier`` when it exists."""
        for unique_id, props in self.manifest["sources"].items():
            identifier = props.get("identifier") or props["name"]
            yield unique_id, (str(props["schema"]), str(identifier))

    def tests(self) -> Iterator[Mapping[str, Any]]:
        for props in self.manifest["nodes"].values():
            if props["resource_type"] == "test":
                yield props


def find_dbt_project(root: Path) -> DbtProject | None:
    """The dbt project under `root` (``workflows/transforms/dbt``), parsed, or None when the
    project has none. The manifest is cached in ``target/phlo`` until a file changes."""
    folder = (root / DBT_DIR).resolve()
    if not (folder / "dbt_project.yml").is_file():
        return None
    return DbtProject(folder, parse_manifest(folder))


def parse_manifest(folder: Path) -> Mapping[str, Any]:
    """``dbt parse`` of the project (with phlo's profile), cached by the project's files."""
    target = folder / "target" / "phlo"
    manifest_file, stamp_file = target / "manifest.json", target / "phlo-parse.stamp"
    stamp = _fingerprint(folder)
    if not (stamp_file.is_file() and stamp_file.read_text() == stamp and manifest_file.is_file()):
        _parse(folder, stamp)
    return json.loads(manifest_file.read_text())  # type: ignore[no-any-return]


def build_manifest(folder: Path) -> DbtManifest:
    """The project's manifest as dbt's object, for a build to use instead of parsing: a copy
    (a build modifies it) of the one parsed from the project's current files and environment.
    A process parses each version of them once; a new process starts from dbt's partial-parse
    file in ``target/phlo`` (a fraction of a full parse)."""
    stamp = _fingerprint(folder)
    with LOCK:
        cached = _MANIFESTS.get(folder)
        if cached is None or cached[0] != (stamp, _environment()):
            _parse(folder, stamp)
            cached = _MANIFESTS[folder]
    return _thaw(cached[1])


def _parse(folder: Path, stamp: str) -> None:
    """Parses the project into ``target/phlo`` (manifest.json, its stamp, dbt's partial-parse
    file) and the process's cache. A parse's profile and variables never change, so that dbt's
    partial parsing can reuse the previous parse (dbt's rules: same files, environment
    variables, profile and ``--vars``). A build's ``partition_date_str`` therefore reaches the
    SQL of models, not their ``config()`` or ``ref()``s (nor phlo's asset graph)."""
    from phlo.transforms.profile import DATABASE, write_profile

    target = folder / "target" / "phlo"
    saved = target / "partial_parse.msgpack"
    # Parse in a folder of its own, then move the files in: two processes loading the
    # definitions at once (Dagster's code server and a run) must not read a half-written file.
    work = target / f"parse-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    try:
        # A relative path: the database name dbt renders, and the same profile wherever the
        # project is (a parse never opens the file).
        profiles = write_profile(work / "profile", duckdb_path=Path(f"{DATABASE}.duckdb"))
        with LOCK:
            environment = _environment()
            previous = ["--partial-parse-file-path", str(saved)] if saved.is_file() else []
            manifest = run_dbt(["parse", "--partial-parse", *previous], folder, profiles, work)
            _MANIFESTS.pop(folder, None)
            while len(_MANIFESTS) >= _CACHED_PROJECTS:
                _MANIFESTS.pop(next(iter(_MANIFESTS)))
            _MANIFESTS[folder] = ((stamp, environment), _freeze(manifest))
        os.replace(work / "manifest.json", target / "manifest.json")
        with contextlib.suppress(FileNotFoundError):
            os.replace(work / "partial_parse.msgpack", saved)
        (work / "stamp").write_text(stamp)
        os.replace(work / "stamp", target / "phlo-parse.stamp")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _freeze(manifest: DbtManifest) -> bytes:
    """The manifest as dbt saves it for partial parsing (``copy.deepcopy`` of a manifest is
    broken in dbt 1.11: its ``__reduce_ex__`` misses a field)."""
    from dbt.parser.manifest import extended_mashumaro_encoder

    return manifest.to_msgpack(extended_mashumaro_encoder)


def _thaw(saved: bytes) -> DbtManifest:
    from dbt.contracts.graph.manifest import Manifest
    from dbt.parser.manifest import extended_mashumuro_decoder

    manifest: DbtManifest = Manifest.from_msgpack(saved, decoder=extended_mashumuro_decoder)
    manifest.build_flat_graph()  # type: ignore[no-untyped-call]
    return manifest


def _environment() -> int:
    """The process's environment variables (a parse may read them with ``env_var()``)."""
    return hash(frozenset(os.environ.items()))


def _fingerprint(folder: Path) -> str:
    """A digest of the project's files, by name and contents: a file written again right
    after a parse may keep its size and mtime (the file clock moves in ticks of milliseconds)."""
    digest = hashlib.sha256()
    for file in sorted(folder.rglob("*")):
        parts = file.relative_to(folder).parts
        if parts[0] in _NOT_SOURCES or not file.is_file():
            continue
        contents = hashlib.sha256(file.read_bytes()).hexdigest()
        digest.update(f"{'/'.join(parts)}:{contents}\n".encode())
    return digest.hexdigest()
