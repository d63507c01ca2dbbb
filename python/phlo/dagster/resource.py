"""The ``phlo`` resource: the project's lakehouse, and the ref a run reads and writes (its WAP
branch while the run is unpublished)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg

from phlo import wap
from phlo.dagster import tags

if TYPE_CHECKING:
    from phlo.config import ProjectConfig
    from phlo.ingestion.decorator import IngestionDefinition
    from phlo.lakehouse import Lakehouse, Table

__all__ = ["PhloResource"]


class PhloResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Gives assets the project's lakehouse at the run's ref::

    @dg.asset(deps=["dlt_events"])
    def daily_totals(context: dg.AssetExecutionContext, phlo: PhloResource) -> None:
        events = phlo.table("raw.events", context).to_arrow()   # the run's branch
    """

    #: The lakehouse folder.
    lakehouse: str
    #: The project folder, when its settings name a catalog and warehouse other than the
    #: lakehouse folder's: each process resolves them (and reads their secrets) itself, so
    #: no secret is in the run's configuration. Empty: the lakehouse folder is the lakehouse.
    project: str = ""
    #: The ref runs publish into.
    target: str = "main"
    #: Write-Audit-Publish: runs write to ``pipeline-run-{run_id}``, published on success.
    wap: bool = True
    #: Where ingestion tables go unless they say otherwise.
    namespace: str = "raw"

    @classmethod
    def from_project(cls, project: ProjectConfig) -> PhloResource:
        connected = project.lakehouse_target().folder is None
        return cls(
            lakehouse=str(project.lakehouse_path),
            project=str(project.root) if connected else "",
            target=project.wap.target,
            wap=project.wap.enabled,
            namespace=project.namespace,
        )

    def open(self) -> Lakehouse:
        from phlo.lakehouse_target import open_located

        return open_located(self.lakehouse, self.project)

    def run_ref(self, context: Any, ingestions: Sequence[IngestionDefinition] = ()) -> str:
        """The ref the run of `context` writes to: its WAP branch (created from the target
        unless it exists), or the target with WAP off. Records the lakehouse, target and
        branch as run tags. Before creating the branch, the tables of `ingestions` missing on
        the target are created there (empty): a table first created on two run branches
        could not be published by both."""
        return open_run_ref(self, context.instance, context.run.run_id, ingestions)

    def table(self, name: str, context: Any) -> Table:
        """Table `name` at the run's ref (`run_ref`)."""
        return self.open().table(name, self.run_ref(context))


def open_run_ref(
    resource: PhloResource,
    instance: dg.DagsterInstance,
    run_id: str,
    ingestions: Sequence[IngestionDefinition] = (),
) -> str:
    """`PhloResource.run_ref` for a run known by id (the branch creation sensor)."""
    from phlo.ingestion.runner import ensure_table

    lh = resource.open()
    run_tags = {tags.LAKEHOUSE: resource.lakehouse, tags.TARGET: resource.target}
    if resource.project:
        run_tags[tags.PROJECT] = resource.project
    ref = resource.target
    if resource.wap:
        ref = wap.run_branch(run_id)
        if ref not in lh.branches():
            for definition in ingestions:
                ident = definition.table_identifier(resource.namespace)
                ensure_table(definition, lh, ident, resource.target)
            wap.ensure_run_branch(lh, run_id, resource.target)
        run_tags[tags.BRANCH] = ref
    instance.add_run_tags(run_id, run_tags)
    return ref
