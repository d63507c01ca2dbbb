"""`@phlo_ingestion` runs killed (SIGKILL) in every phase, from outside: during a dlt or an Arrow
extraction, after dlt's normalize, after staging, after validation, inside the branch commit (before and after its
pointer swap), inside the append's delete, inside the publishing merge (before and after it
applied) and before the branch is removed. Afterwards `main` holds the partition as the killed
run left it — its rows once, or the previous run's rows once, never a mix —, a re-run
publishes the partition exactly once, the documented cleanup (`phlo.wap.cleanup`) removes the
leftover branch and staged input, and orphan removal deletes nothing `main` reads.

The child is held at the point (engine failpoints `PHLO_FAILPOINTS=<point>:pause`, or a wrapper
around one of phlo's own steps) and killed there: no timing."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandera.pandas as pa_schema
import pytest
from pandera.typing import Series

import phlo
from phlo import wap

# The child: a run of partition DAY of raw.log (append) or raw.upserts (merge), whose rows carry
# VERSION. It arms its kill point once the run's branch exists (the source is called then).
CHILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import phlo
    from phlo.ingestion import runner

    where, strategy, day, version, point, held_dir = sys.argv[1:7]
    held = Path(held_dir)

    def hold(name):
        (held / f"{name}.paused").write_text("")
        time.sleep(3600)

    def arm():
        if "." in point:  # an engine failpoint
            os.environ["PHLO_FAILPOINT_DIR"] = held_dir
            os.environ["PHLO_FAILPOINTS"] = f"{point}:pause"

    def rows():
        return [{"id": f"{day}-{i:03d}", "version": version} for i in range(20)]

    if point == "dlt-normalize":
        import dlt

        normalize = dlt.Pipeline.normalize

        def normalized(self, *args, **kwargs):
            out = normalize(self, *args, **kwargs)
            hold(point)
            return out

        dlt.Pipeline.normalize = normalized

        @dlt.resource(name="log" if strategy == "append" else "upserts")
        def source():
            yield rows()
    elif point == "dlt-extract":
        import dlt

        @dlt.resource(name="log" if strategy == "append" else "upserts")
        def source():
            yield rows()[:10]
            hold(point)
    else:
        def source():
            arm()
            if point == "extract":
                yield from rows()[:10]
                hold(point)
            yield from rows()

    def after(step):
        original = getattr(runner, step)
        def wrapper(*args, **kwargs):
            out = original(*args, **kwargs)
            hold(point)
            return out
        setattr(runner, step, wrapper)

    if point == "stage":
        after("stage")
    if point == "validate":
        after("_validated")
    if point == "branch-delete":
        original_delete = phlo.Lakehouse.delete_branch
        def delete_branch(self, name):
            if name.startswith("pipeline-run-"):
                hold(point)
            return original_delete(self, name)
        phlo.Lakehouse.delete_branch = delete_branch

    import pandera.pandas as pa_schema
    from pandera.typing import Series

    class Row(pa_schema.DataFrameModel):
        id: Series[str] = pa_schema.Field(nullable=False)
        version: Series[str]

    @phlo.phlo_ingestion(table_name="log" if strategy == "append" else "upserts",
                         unique_key="id", group="g", merge_strategy=strategy,
                         validation_schema=Row)
    def ingestion(partition_date: str):
        return source()

    if where.startswith("postgresql://"):
        url, warehouse = where.split(" ")
        lakehouse = phlo.Lakehouse.connect(url, warehouse)
    else:
        lakehouse = phlo.Lakehouse.open(where)
    print("ready", flush=True)
    started = time.perf_counter()
    ingestion.run(day, lakehouse=lakehouse)
    print(time.perf_counter() - started, flush=True)
    """
)

DAY = "2025-04-01"


class Row(pa_schema.DataFrameModel):
    id: Series[str] = pa_schema.Field(nullable=False)
    version: Series[str]


def in_process(strategy: str, lh: phlo.Lakehouse, version: str) -> str:
    """An undisturbed run of the partition, in this process (the child's ingestion)."""

    @phlo.phlo_ingestion(
        table_name="log" if strategy == "append" else "upserts",
        unique_key="id",
        group="g",
        merge_strategy=strategy,
        validation_schema=Row,
    )
    def ingestion(partition_date: str):
        return [{"id": f"{DAY}-{i:03d}", "version": version} for i in range(20)]

    return ingestion.run(DAY, lakehouse=lh).status


#: Kill points, and whether the killed run's rows are on main afterwards.
POINTS = {
    "dlt-extract": False,
    "dlt-normalize": False,  # its Parquet files written, not staged yet
    "extract": False,
    "stage": False,
    "validate": False,
    "delete.before-commit": False,  # append: removing the partition's earlier rows
    "commit.after-manifests": False,  # the branch commit, before its pointer swap
    "commit.after-swap": False,  # the branch commit landed; not published
    "merge.before-apply": False,  # the publishing merge, before it applies
    "merge.after-apply": True,  # published; the branch not removed yet
    "branch-delete": True,
}


def run_child(
    where: str, strategy: str, version: str, point: str, held: Path, cwd: Path | None = None
) -> str:
    """Runs the child until it is held at `point`, then kills it; returns "killed", or
    "finished" when it never reached the point."""
    held.mkdir(exist_ok=True)
    for f in held.iterdir():
        f.unlink()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHLO_FAILPOINT")}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, where, strategy, DAY, version, point, str(held)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )
    try:
        while not list(held.glob("*.paused")):
            try:
                _, err = child.communicate(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            assert child.returncode == 0, err[-3000:]
            return "finished"
        child.send_signal(signal.SIGKILL)
        child.communicate()
        return "killed"
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


def main_rows(lh: phlo.Lakehouse, table: str) -> list[tuple[str, str]]:
    data = lh.table(table).scan(columns=["id", "version"]).to_arrow()
    return sorted(
        zip(data.column("id").to_pylist(), data.column("version").to_pylist(), strict=True)
    )


def expected(version: str) -> list[tuple[str, str]]:
    return [(f"{DAY}-{i:03d}", version) for i in range(20)]


@pytest.mark.parametrize(("strategy", "catalog"), [("append", "sqlite"), ("merge", "postgres")])
def test_runs_killed_in_every_phase_publish_once_or_not_at_all(
    request, tmp_path: Path, strategy: str, catalog: str
):
    if catalog == "sqlite":
        where = str(tmp_path / "lake")
        lh = phlo.Lakehouse.open(where)
    else:
        url, warehouse = request.getfixturevalue("postgres_url"), f"file://{tmp_path / 'wh'}"
        where = f"{url} {warehouse}"
        lh = phlo.Lakehouse.connect(url, warehouse)
    assert in_process(strategy, lh, "v0") == "published"
    table = "raw.log" if strategy == "append" else "raw.upserts"
    held = tmp_path / "held"
    state = expected("v0")
    assert main_rows(lh, table) == state
    for k, (point, lands) in enumerate(POINTS.items(), start=1):
        if point == "delete.before-commit" and strategy == "merge":
            continue
        version = f"v{k}"
        assert run_child(where, strategy, version, point, held) == "killed", point
        after = main_rows(lh, table)
        assert after == (expected(version) if lands else state), (point, after)
        state = after
        # A re-run of the partition publishes it once.
        rerun = f"r{k}"
        assert in_process(strategy, lh, rerun) == "published"
        state = expected(rerun)
        assert main_rows(lh, table) == state, point
        # The documented cleanup removes what the killed run left: its branch, its staged
        # input; orphan removal then deletes nothing main reads.
        wap.cleanup(lh, dt.timedelta(0), removable=lambda run_id: True)
        assert lh.branches() == ["main"], point
        staging = lh.scratch_dir / "staging"
        assert not staging.exists() or not list(staging.iterdir()), (
            point,
            list(staging.rglob("*")),
        )
        lh.remove_orphan_files(older_than=dt.timedelta(0))
        assert main_rows(lh, table) == state, point


def test_runs_killed_at_random_moments_publish_once_or_not_at_all(tmp_path: Path):
    """Kills spread over a run (append, the delete and the append on the branch, then the
    publishing merge), at moments no failpoint names: inside a write, the SQLite
    transaction of the merge, a file being staged."""
    where, held = str(tmp_path / "lake"), tmp_path / "held"
    held.mkdir()
    lh = phlo.Lakehouse.open(where)
    assert in_process("append", lh, "v0") == "published"
    state = expected("v0")

    def start(version: str) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, where, "append", DAY, version, "none", str(held)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        return child

    # An undisturbed run measures how long a run takes, to spread the kills over it.
    child = start("v1")
    assert child.stdout is not None
    duration = float(child.stdout.readline())
    assert child.wait() == 0
    child.stdout.close()
    state = expected("v1")
    kills = 6
    moments = [duration * 1.2 * (i + 0.5) / kills for i in range(kills)]
    random.Random(20261130).shuffle(moments)
    for k, moment in enumerate(moments, start=2):
        child = start(f"v{k}")
        time.sleep(moment)
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.stdout is not None
        child.stdout.close()
        after = main_rows(lh, "raw.log")
        assert after in (state, expected(f"v{k}")), (moment, after)
        state = after
    wap.cleanup(lh, dt.timedelta(0), removable=lambda run_id: True)
    assert lh.branches() == ["main"]
    staging = lh.scratch_dir / "staging"
    assert not staging.exists() or not list(staging.iterdir())
    lh.remove_orphan_files(older_than=dt.timedelta(0))
    assert main_rows(lh, "raw.log") == state
    assert in_process("append", lh, "last") == "published"
    assert main_rows(lh, "raw.log") == expected("last")


def test_with_wap_off_an_append_rerun_killed_between_its_delete_and_append_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Without a run branch the re-run writes straight to main: its delete of the partition's
    earlier rows and its append must land together."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "phlo.yaml").write_text("wap: {enabled: false}\n")
    monkeypatch.chdir(project)
    where = str(tmp_path / "lake")
    lh = phlo.Lakehouse.open(where)
    assert in_process("append", lh, "v0") == "published"
    # The delete committed; killed before the append.
    assert run_child(where, "append", "v1", "commit.after-swap", tmp_path / "held", project) == (
        "killed"
    )
    assert main_rows(lh, "raw.log") == expected("v0")
    assert in_process("append", lh, "v2") == "published"
    assert main_rows(lh, "raw.log") == expected("v2")
