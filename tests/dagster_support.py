"""Helpers of the Dagster tests: a real project folder (copied from tests/projects/events), a
Dagster instance on a DAGSTER_HOME under the test's tmp_path, and materialize + promote."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import dagster as dg
import pytest

import phlo
import phlo.dagster

TEMPLATE = Path(__file__).parent / "projects" / "events"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of the events project (its lakehouse is ``<project>/.phlo``)."""
    folder = tmp_path / "project"
    shutil.copytree(TEMPLATE, folder, ignore=shutil.ignore_patterns("__pycache__", ".phlo"))
    return folder


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dg.DagsterInstance]:
    """A persistent Dagster instance on ``DAGSTER_HOME=<tmp>/dagster_home``."""
    home = tmp_path / "dagster_home"
    shutil.copytree(_new_instance_files(), home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


@functools.cache
def _new_instance_files() -> Path:
    """The storage of a new instance, made once per process: creating its SQLite schemas costs
    ~0.3 CPU-s (~1 s wall), a copy of the empty databases a sixth of that."""
    home = Path(tempfile.mkdtemp(prefix="phlo-dagster-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    with dg.instance_for_test(temp_dir=str(home)):
        pass
    return home


def lakehouse_of(project: Path) -> phlo.Lakehouse:
    return phlo.Lakehouse.open(project / ".phlo")


def materialize(
    defs: dg.Definitions,
    keys: Sequence[str],
    partition: str,
    instance: dg.DagsterInstance,
    *,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [defs.get_assets_def(k) for k in keys],
        partition_key=partition,
        instance=instance,
        resources=defs.resources,
        raise_on_error=raise_on_error,
    )


def rows(project: Path, table: str, ref: str = "main") -> list[dict[str, object]]:
    data = lakehouse_of(project).table(table, ref).to_arrow()
    return sorted(data.select(["id", *_payload(data.column_names)]).to_pylist(), key=_id)


def _payload(columns: list[str]) -> list[str]:
    return [c for c in columns if c not in ("id",) and not c.startswith("_phlo_")]


def _id(row: dict[str, object]) -> int:
    return int(row["id"])  # type: ignore[call-overload]


def published_runs(project: Path) -> list[str]:
    """Run ids of the merges that published runs into main, newest first."""
    return [
        e.properties["wap.published"]
        for e in lakehouse_of(project).log("main", 1000)
        if "wap.published" in e.properties
    ]


def run_branches(project: Path) -> list[str]:
    return [b for b in lakehouse_of(project).branches() if b.startswith("pipeline-run-")]


def run_and_promote(
    defs: dg.Definitions, keys: Sequence[str], partition: str, instance: dg.DagsterInstance
) -> phlo.dagster.RunPromotion:
    result = materialize(defs, keys, partition, instance)
    return phlo.dagster.promote(instance, result.run_id)
