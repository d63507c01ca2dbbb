"""Publishing assets declared in a project's ``publishing.yaml`` (the seed's layout): each
publishes lakehouse marts to PostgreSQL with `phlo.publishing.publish_marts_to_postgres`, after
the assets writing them.

```yaml
publishing:
  shop:                                  # the data source (one asset per entry)
    name: publish_shop_marts             # asset name (default: publish_<source>)
    group: publishing                    # default: publishing
    description: Shop marts for BI
    dependencies: [mrt_category_totals]  # default: the dbt models writing the tables
    tables:                              # PostgreSQL table: lakehouse table
      category_totals: marts.mrt_category_totals
    target_schema: marts                 # default: marts
    primary_keys: {category_totals: [category]}
    indexes: {category_totals: [orders]}
    incremental: false
    optional: false                      # true: skip (with a warning) when no PostgreSQL is configured
```

With Write-Audit-Publish on, the asset of a run that has a WAP branch publishes nothing inside
the run (the run's marts are on its unpromoted branch): it records the publication in its
materialization, and `promote` publishes it from the target once the run's merge landed
(`publish_recorded`), so PostgreSQL only ever holds what the target holds. With WAP off, or in
a run that wrote nothing (the asset alone), it publishes from the target at once.
"""

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from phlo.dagster import tags
from phlo.dagster.assets import RESOURCE_KEY
from phlo.dagster.runs import run_events
from phlo.errors import ConfigError

if TYPE_CHECKING:
    from phlo.config import ProjectConfig
    from phlo.lakehouse import Lakehouse
    from phlo.publishing import PublishResult
    from phlo.transforms.project import DbtProject

__all__ = [
    "PUBLISHING_FILES",
    "Publication",
    "build_publishing_assets",
    "publish_recorded",
    "read_publishing",
    "recorded_publications",
]

#: Materialization metadata of a publishing asset whose publication waits for the promotion:
#: the publication (``Publication`` fields) and its project folder (for ``postgres.url``).
RECORDED_KEY = "phlo/publish_at_promotion"

#: Where a project declares its publishing assets (the first that exists).
PUBLISHING_FILES = ("publishing.yaml", "workflows/publishing.yaml")
_KEYS = {
    "name",
    "group",
    "description",
    "dependencies",
    "tables",
    "target_schema",
    "primary_keys",
    "indexes",
    "incremental",
    "optional",
}


@dataclass(frozen=True)
class Publication:
    """One entry of ``publishing.yaml``."""

    data_source: str
    name: str
    tables: Mapping[str, str]
    group: str = "publishing"
    description: str | None = None
    dependencies: Sequence[str] | None = None
    target_schema: str = "marts"
    primary_keys: Mapping[str, Any] = field(default_factory=dict)
    indexes: Mapping[str, Any] = field(default_factory=dict)
    incremental: bool = False
    #: Skip, with a warning, when no PostgreSQL connection is configured (examples, laptops).
    optional: bool = False


def read_publishing(root: Path) -> list[Publication]:
    """The publications of the project at `root` (none without a publishing.yaml); a malformed
    entry is a `ConfigError` naming the file and the entry."""
    import yaml

    file = next((root / f for f in PUBLISHING_FILES if (root / f).is_file()), None)
    if file is None:
        return []
    try:
        raw = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file} is not valid YAML: {exc}") from exc
    entries = raw.get("publishing") if isinstance(raw, Mapping) else None
    if not isinstance(entries, Mapping):
        raise ConfigError(f"{file} must hold a mapping `publishing: {{<data source>: {{...}}}}`")
    return [_publication(file, str(source), entry) for source, entry in entries.items()]


def _publication(file: Path, source: str, entry: Any) -> Publication:
    where = f"{file}: publishing.{source}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping")
    unknown = set(entry) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    tables = entry.get("tables")
    if (
        not isinstance(tables, Mapping)
        or not tables
        or not all(isinstance(v, str) and "." in v for v in tables.values())
    ):
        raise ConfigError(
            f"{where}.tables must map PostgreSQL table names to lakehouse tables "
            f"(namespace.table), e.g. {{category_totals: marts.mrt_category_totals}}"
        )
    dependencies = entry.get("dependencies")
    if dependencies is not None and (
        not isinstance(dependencies, list) or not all(isinstance(d, str) for d in dependencies)
    ):
        raise ConfigError(f"{where}.dependencies must be a list of asset keys")
    return Publication(
        data_source=source,
        name=str(entry.get("name") or f"publish_{source}"),
        tables={str(k): str(v) for k, v in tables.items()},
        group=str(entry.get("group") or "publishing"),
        description=entry.get("description"),
        dependencies=dependencies,
        target_schema=str(entry.get("target_schema") or "marts"),
        primary_keys=dict(entry.get("primary_keys") or {}),
        indexes=dict(entry.get("indexes") or {}),
        incremental=bool(entry.get("incremental", False)),
        optional=bool(entry.get("optional", False)),
    )


def build_publishing_assets(
    project: "ProjectConfig",
    dbt: "DbtProject | None",
    partitions_def: dg.PartitionsDefinition,
) -> list[dg.AssetsDefinition]:
    """An asset per publication, depending on its ``dependencies`` or else on the dbt models
    that write its tables; partitioned like the dbt models so both run in one run."""
    writers = {node.table: node.name for node in dbt.nodes()} if dbt is not None else {}
    return [
        _asset(publication, project, writers, partitions_def)
        for publication in read_publishing(project.root)
    ]


def _asset(
    publication: Publication,
    project: "ProjectConfig",
    writers: Mapping[str, str],
    partitions_def: dg.PartitionsDefinition,
) -> dg.AssetsDefinition:
    if publication.dependencies is not None:
        deps = list(publication.dependencies)
    else:
        deps = [writers[t] for t in publication.tables.values() if t in writers]

    @dg.asset(
        name=publication.name,
        group_name=publication.group,
        description=publication.description
        or f"Publishes {', '.join(publication.tables.values())} to PostgreSQL "
        f"schema {publication.target_schema}",
        deps=deps,
        kinds={"postgres"},
        partitions_def=partitions_def,
        required_resource_keys={RESOURCE_KEY},
    )
    # Dagster reads this annotation at definition time: no `from __future__ import annotations`.
    def publish(context: dg.AssetExecutionContext) -> None:
        resource = getattr(context.resources, RESOURCE_KEY)
        connection = _connection(project.root)
        if connection is None and publication.optional:
            reason = "no PostgreSQL configured (PHLO_POSTGRES_URL or postgres.url in phlo.yaml)"
            context.log.warning(f"{publication.name}: not published: {reason}")
            context.add_output_metadata({"published": False, "reason": reason})
            return
        run = context.instance.get_run_by_id(context.run.run_id) or context.run
        if resource.wap and tags.BRANCH in run.tags:
            # The marts are on the run's branch: publishing them now would show BI data the
            # target may never get (a blocked or conflicting promotion). A run without a
            # branch (this asset alone) wrote nothing: it publishes the target at once.
            if connection is None:  # fail the run now: it must not promote unpublishable
                raise ConfigError(
                    f"{publication.name}: no PostgreSQL connection: set PHLO_POSTGRES_URL (also "
                    "for the Dagster daemon, which publishes at promotion) or postgres.url in "
                    "phlo.yaml, or mark the publication optional: true"
                )
            spec = asdict(publication) | {"project": str(project.root)}
            context.log.info(
                f"{publication.name}: publishes {', '.join(publication.tables.values())} from "
                f"{resource.target} once the run is promoted"
            )
            context.add_output_metadata(
                {
                    "published": False,
                    "reason": f"published from {resource.target} when the run is promoted",
                    RECORDED_KEY: dg.MetadataValue.json(spec),
                }
            )
            return
        _publish(context, publication, resource.open(), resource.target, connection)

    return publish


def _connection(root: Path) -> str | None:
    """`PHLO_POSTGRES_URL`, else ``postgres.url`` of the project at `root`."""
    from phlo.config import load_project

    return os.environ.get("PHLO_POSTGRES_URL") or load_project(root).postgres_url


def _publish(
    context: Any,
    publication: Publication,
    lakehouse: "Lakehouse",
    ref: str,
    connection: str | None,
    *,
    newest: bool = False,
) -> "dict[str, PublishResult]":
    from phlo.publishing import publish_marts_to_postgres

    return publish_marts_to_postgres(
        context,
        publication.tables,
        data_source=publication.data_source,
        target_schema=publication.target_schema,
        lakehouse=lakehouse,
        ref=ref,
        connection=connection,
        primary_keys=publication.primary_keys,
        indexes=publication.indexes,
        incremental=publication.incremental,
        newest=newest,
    )


def recorded_publications(
    instance: dg.DagsterInstance, run_id: str
) -> list[tuple[Publication, Path]]:
    """The publications run `run_id` left for its promotion, with their project folders."""
    found = []
    for event in run_events(instance, run_id, dg.DagsterEventType.ASSET_MATERIALIZATION):
        value = event.step_materialization_data.materialization.metadata.get(RECORDED_KEY)
        if value is not None:
            spec: dict[str, Any] = dict(value.value)  # type: ignore[arg-type]
            root = Path(spec.pop("project"))
            found.append((Publication(**spec), root))
    return found


def publish_recorded(
    publications: Sequence[tuple[Publication, Path]], lakehouse: "Lakehouse", ref: str
) -> "dict[str, PublishResult]":
    """Publishes `publications` (`recorded_publications`) from the head of `ref`; a snapshot
    already published is not sent again, nor an older one over a newer. Keyed by
    ``schema.table``."""
    results: dict[str, PublishResult] = {}
    for publication, root in publications:
        published = _publish(None, publication, lakehouse, ref, _connection(root), newest=True)
        results |= {r.table: r for r in published.values()}
    return results
