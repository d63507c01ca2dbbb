"""`definitions(project_dir)`: a phlo project as Dagster `Definitions`."""

from __future__ import annotations

import datetime as dt
import os

import dagster as dg

from phlo.config import load_project
from phlo.dagster.assets import RESOURCE_KEY, build_asset, project_partitions
from phlo.dagster.publishing import build_publishing_assets
from phlo.dagster.quality import build_quality_checks
from phlo.dagster.resource import PhloResource
from phlo.dagster.schedules import build_job, build_schedule
from phlo.dagster.sensors import build_sensors
from phlo.dagster.transforms import build_dbt_assets
from phlo.discovery import discover
from phlo.transforms.project import find_dbt_project

__all__ = ["definitions"]


def definitions(project_dir: str | os.PathLike[str] = ".") -> dg.Definitions:
    """Loads the project at or above `project_dir` (its ``phlo.yaml``), imports every
    ``workflows/**/*.py`` and returns, for each `@phlo_ingestion`: an asset ``dlt_<table>``
    with its ``pandera_contract`` check, a job, and a schedule when it has a ``cron``; for
    each `@phlo_quality`, its asset checks; the models, seeds and snapshots of the dbt project
    in ``workflows/transforms/dbt`` (with their tests as checks; docs/dbt.md); the publishing
    assets of ``publishing.yaml`` (docs/publishing.md); plus the WAP
    sensors and the ``phlo`` resource."""
    project = load_project(project_dir)
    workflows = discover(project.root)
    ingestions = workflows.ingestions
    resource = PhloResource.from_project(project)
    assets = [build_asset(d, project, ingestions) for d in ingestions]
    jobs = {d.asset_key: build_job(d) for d in ingestions}
    schedules = [
        build_schedule(d, jobs[d.asset_key], project, ingestions) for d in ingestions if d.cron
    ]
    retention = dt.timedelta(hours=project.wap.branch_retention_hours)
    sensors = build_sensors(resource, ingestions, {j.name for j in jobs.values()}, retention)
    checks = [build_quality_checks(q, ingestions, project) for q in workflows.quality]
    dbt = find_dbt_project(project.root)
    if dbt is not None:
        assets.append(build_dbt_assets(dbt, project, ingestions))
    assets += build_publishing_assets(project, dbt, project_partitions(project, ingestions))
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=list(jobs.values()),
        schedules=schedules,
        sensors=sensors,
        resources={RESOURCE_KEY: resource},
    )
