"""Dagster's multiprocess executor running several partitions at once against the scaled
profile: phlo's catalog on a real PostgreSQL, the warehouse on a real S3 server (SeaweedFS).

Each partition is its own Dagster run in its own process (`distributed_worker.py`), and each
run's step in a child process of that (the multiprocess executor). The steps wait for each
other inside the ingestion (a barrier of files), so they provably run at the same time and
commit to their WAP branches at the same time; then the runs publish at the same time. The
oracle is a plain dict of the rows every partition generates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table.snapshots import ancestors_of

import phlo
from phlo import wap
from phlo.config import load_project
from seaweedfs_server import ACCESS_KEY, BUCKET, SECRET_KEY, S3Server

WORKERS = 4
PARTITIONS = [f"2025-01-{day:02d}" for day in range(2, 2 + WORKERS)]
ROWS_PER_PARTITION = 300
WORKER = Path(__file__).with_name("distributed_worker.py")

PHLO_YAML = """\
lakehouse: .phlo
namespace: raw
partitions: {{start: "2025-01-01", timezone: UTC}}
wap: {{enabled: true, target: main}}
schedules: {{default_status: stopped}}
profile: scaled
profiles:
  scaled:
    storage: {{endpoint: "{endpoint}", bucket: {bucket}, prefix: "{prefix}", region: us-east-1}}
    catalog: {{uri: "{catalog}"}}
"""

DEFINITIONS = """\
from pathlib import Path

import phlo.dagster

defs = phlo.dagster.definitions(Path(__file__).parent)


def events_job():
    # A function returning the job: `dagster.reconstructable` needs one for the
    # multiprocess executor, whose step processes import this module.
    return defs.get_job_def("dlt_events_job")
"""

# The source: generated rows, no network. Before returning them, each step records its
# process and waits until every step has started (the barrier proves they overlap).
INGESTION = """\
import datetime as dt
import json
import os
import time
from pathlib import Path

import pandera.pandas as pandera
import pyarrow as pa
from pandera.typing import Series

from phlo import phlo_ingestion


class EventSchema(pandera.DataFrameModel):
    id: Series[int] = pandera.Field(nullable=False)
    day: Series[str]
    value: Series[float] = pandera.Field(ge=0)

    class Config:
        strict = True
        coerce = True


def _barrier(partition_date):
    folder, count = Path(os.environ["BARRIER"]), int(os.environ["BARRIER_COUNT"])
    started = time.time()
    (folder / f"step.{{partition_date}}").write_text(str(os.getpid()))
    while len(list(folder.glob("step.*"))) < count:
        if time.time() - started > 300:
            raise TimeoutError("the other partitions' steps never started")
        time.sleep(0.05)
    record = {{"pid": os.getpid(), "started": started, "released": time.time()}}
    (folder / f"record.{{partition_date}}.json").write_text(json.dumps(record))


@phlo_ingestion(table_name="events", unique_key="id", group="api", validation_schema=EventSchema,
                max_retries=0, max_runtime_seconds=900)
def api_events(partition_date: str) -> pa.Table:
    _barrier(partition_date)
    day = dt.date.fromisoformat(partition_date).toordinal()
    return pa.table({{
        "id": pa.array([day * 10_000 + i for i in range({rows})], pa.int64()),
        "day": pa.array([partition_date] * {rows}),
        "value": pa.array([float(i % 7) for i in range({rows})]),
    }})
"""


def expected_rows() -> dict[int, tuple[str, float]]:
    """The oracle: id → (day, value) of every partition's rows."""
    import datetime as dt

    model = {}
    for day in PARTITIONS:
        base = dt.date.fromisoformat(day).toordinal() * 10_000
        for i in range(ROWS_PER_PARTITION):
            model[base + i] = (day, float(i % 7))
    return model


def model_of(rows: list[dict[str, Any]]) -> dict[int, tuple[str, float]]:
    model = {int(r["id"]): (r["day"], r["value"]) for r in rows}
    assert len(model) == len(rows), "a key is in the table twice"
    return model


@pytest.fixture
def scaled_project(
    tmp_path: Path, s3_server: S3Server, s3_warehouse: str, postgres_url: str
) -> Path:
    """A project whose `scaled` profile (the active one) is PostgreSQL + S3, its secrets in
    ``.phlo/.env.local`` as a deployment would have them."""
    project = tmp_path / "project"
    (project / "workflows" / "ingestion").mkdir(parents=True)
    (project / ".phlo").mkdir()
    prefix = s3_warehouse.removeprefix(f"s3://{BUCKET}/")
    (project / "phlo.yaml").write_text(
        PHLO_YAML.format(
            endpoint=s3_server.endpoint, bucket=BUCKET, prefix=prefix, catalog=postgres_url
        )
    )
    (project / ".phlo" / ".env.local").write_text(
        f"PHLO_STORAGE__ACCESS_KEY_ID={ACCESS_KEY}\nPHLO_STORAGE__SECRET_ACCESS_KEY={SECRET_KEY}\n"
    )
    (project / "definitions.py").write_text(DEFINITIONS)
    (project / "workflows" / "ingestion" / "events.py").write_text(
        INGESTION.format(rows=ROWS_PER_PARTITION)
    )
    return project


@pytest.fixture
def workers_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The workers' environment: one persistent Dagster instance (DAGSTER_HOME) and the
    barrier folder; no PHLO_* of the machine running the tests."""
    home, barrier = tmp_path / "dagster_home", tmp_path / "barrier"
    home.mkdir()
    barrier.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # Dagster's storage is created (migrated) once, before the workers: processes creating
    # its SQLite schema at the same time fail (alembic_version already exists).
    dg.DagsterInstance.from_config(str(home)).dispose()
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("PHLO_")}
    env.update(
        DAGSTER_HOME=str(home),
        BARRIER=str(barrier),
        BARRIER_COUNT=str(WORKERS),
        PYTHONPATH=os.pathsep.join([str(WORKER.parent), env.get("PYTHONPATH", "")]),
    )
    yield env


def run_partitions_at_once(project: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """Starts one worker process per partition, all at once; their JSON reports."""
    barrier = env["BARRIER"]
    command = [sys.executable, str(WORKER), str(project), "events_job"]
    processes = [
        subprocess.Popen(
            [*command, day, barrier, str(WORKERS)],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for day in PARTITIONS
    ]
    outputs = [p.communicate(timeout=900) for p in processes]
    failed = [
        err[-3000:] for p, (_out, err) in zip(processes, outputs, strict=True) if p.returncode
    ]
    assert not failed, "\n\n".join(failed)
    return [json.loads(out.strip().splitlines()[-1]) for out, _err in outputs]


def test_partitions_run_at_once_in_processes_and_all_publish(
    scaled_project: Path, workers_env: dict[str, str]
) -> None:
    reports = run_partitions_at_once(scaled_project, workers_env)
    barrier = Path(workers_env["BARRIER"])

    # Every run succeeded and was published by its own worker.
    assert [r["partition"] for r in reports] == PARTITIONS
    assert all(r["success"] for r in reports), reports
    assert [r["promotion"] for r in reports] == ["published"] * WORKERS, reports

    # Concurrency: each step ran in its own process, a child of the run's worker (the
    # multiprocess executor), and every step had started before any was released.
    steps = [json.loads((barrier / f"record.{day}.json").read_text()) for day in PARTITIONS]
    step_pids = {s["pid"] for s in steps}
    assert len(step_pids) == WORKERS
    assert step_pids.isdisjoint(r["pid"] for r in reports)
    assert max(s["started"] for s in steps) <= min(s["released"] for s in steps)
    # ...and the publications overlapped as well.
    assert max(r["publish"][0] for r in reports) < min(r["publish"][1] for r in reports)

    config = load_project(scaled_project)
    lh = config.open_lakehouse()
    assert lh.catalog_uri.startswith("postgresql") and lh.warehouse.startswith("s3://")

    # Every partition's rows, once.
    table = lh.table("raw.events")
    assert model_of(table.to_arrow().to_pylist()) == expected_rows()

    # Every WAP branch merged and removed; one publishing merge per run in main's log.
    assert [b for b in lh.branches() if b.startswith(wap.RUN_BRANCH_PREFIX)] == []
    published = [
        e.properties[wap.PUBLISHED_PROPERTY]
        for e in lh.log("main", 1000)
        if wap.PUBLISHED_PROPERTY in e.properties
    ]
    assert sorted(published) == sorted(r["run_id"] for r in reports)

    # No lost commit: main's snapshot history is one snapshot per run, each adding its
    # partition's rows; the first published fast-forwards (its own snapshot, `phlo.run-id`),
    # the others are rebased onto it (`phlo.rebased-from` names the run's branch).
    pyiceberg = SqlCatalog(
        "phlo", uri=lh.catalog_uri, warehouse=lh.warehouse, **config.lakehouse_target().properties
    )
    try:
        events = pyiceberg.load_table("raw.events")
        history = [
            s.summary.additional_properties
            for s in ancestors_of(events.current_snapshot(), events.metadata)
            if s.summary is not None
        ]
        runs = [
            h.get("phlo.run-id") or h["phlo.rebased-from"].removeprefix(wap.RUN_BRANCH_PREFIX)
            for h in history
        ]
        assert sorted(runs) == sorted(r["run_id"] for r in reports)
        assert [h["added-records"] for h in history] == [str(ROWS_PER_PARTITION)] * WORKERS
        # PyIceberg, on the same PostgreSQL catalog and S3 warehouse, reads the same rows.
        assert model_of(events.scan().to_arrow().to_pylist()) == expected_rows()
    finally:
        pyiceberg.engine.dispose()


def test_lakehouse_is_the_profiles_postgres_and_s3(scaled_project: Path) -> None:
    """The project really resolves to the servers (not to a local folder)."""
    target = load_project(scaled_project).lakehouse_target()
    assert target.folder is None
    assert target.catalog.startswith("postgresql://")
    assert target.warehouse.startswith(f"s3://{BUCKET}/")
    assert target.properties["s3.access-key-id"] == ACCESS_KEY
    lh = phlo.Lakehouse.connect(target.catalog, target.warehouse, dict(target.properties))
    assert lh.branches() == ["main"]
