"""Daft on Ray through `phlo catalog serve`: a real Ray head node (a plain `ray start` process
on 127.0.0.1, 2 CPUs), Daft's Ray runner reading a table phlo wrote through PyIceberg's
RestCatalog, grouping it, and writing a derived table through the same server — on main and on
a branch URI that phlo then merges. The oracle is the group-by computed in plain Python."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from tests.test_catalog_server import served

import phlo
from phlo.errors import NoSuchTableError
from seaweedfs_server import free_port

JOB = Path(__file__).with_name("daft_ray_job.py")
CITIES = ("Oslo", "Lima", "Pune", "Quito")


def ray_binary() -> str:
    found = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if found is None:
        pytest.fail("`ray` not found: install ray (requirements-dev.txt)", pytrace=False)
    return found


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A Ray head node of its own (`ray start --head --block`, in its own process group so
    that the teardown stops it and every process it started, and nothing else)."""
    folder = Path(tempfile.mkdtemp(prefix="phlo-ray-"))  # short: Ray's socket paths
    port = free_port()
    ports = {
        "port": port,
        "ray-client-server-port": free_port(),
        "node-manager-port": free_port(),
        "object-manager-port": free_port(),
        "metrics-export-port": free_port(),
        "dashboard-agent-listen-port": free_port(),
        "dashboard-agent-grpc-port": free_port(),
        "runtime-env-agent-port": free_port(),
    }
    command = [
        ray_binary(),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=2",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={folder}",
        f"--object-store-memory={200 * 1024 * 1024}",
        *(f"--{name}={value}" for name, value in ports.items()),
    ]
    log = folder / "ray-start.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while "Ray runtime started" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start did not start:\n{log.read_text()}", pytrace=False)
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        # SIGTERM makes Ray drain for up to 30 s; an idle test cluster has nothing to keep.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def run_job(ray_address: str, uri: str, source: str, target: str) -> dict[str, object]:
    """`daft_ray_job.py` as its own driver process; its JSON report."""
    done = subprocess.run(
        [sys.executable, str(JOB), ray_address, uri, source, target],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


EVENTS = pa.schema(
    [pa.field("id", pa.int64()), pa.field("city", pa.string()), pa.field("amount", pa.float64())]
)


def events(start: int, n: int) -> pa.Table:
    ids = range(start, start + n)
    return pa.table(
        {
            "id": list(ids),
            "city": [CITIES[(i * 7) % len(CITIES)] for i in ids],
            "amount": [float(i % 13) / 4 for i in ids],
        },
        schema=EVENTS,
    )


def totals_of(rows: list[dict[str, object]]) -> dict[str, tuple[float, int]]:
    """The oracle: city → (sum of amount, rows), computed in plain Python (amounts are
    quarters: their sums are exact in any order)."""
    model: dict[str, tuple[float, int]] = {}
    for row in rows:
        total, count = model.get(str(row["city"]), (0.0, 0))
        model[str(row["city"])] = (total + float(row["amount"]), count + 1)  # type: ignore[arg-type]
    return model


def table_totals(table: phlo.Table) -> dict[str, tuple[float, int]]:
    rows = table.to_arrow().to_pylist()
    assert len({r["city"] for r in rows}) == len(rows), "a city is in the totals twice"
    return {r["city"]: (r["total"], r["rows"]) for r in rows}


@pytest.fixture
def seeded(tmp_path: Path) -> phlo.Lakehouse:
    lh = phlo.Lakehouse.open(tmp_path / "lake")
    lh.create_namespace("raw")
    table = lh.create_table("raw.events", EVENTS)
    table.append(events(0, 4000))
    table.append(events(4000, 1500))
    return lh


def test_daft_on_ray_reads_phlo_and_writes_a_derived_table(
    seeded: phlo.Lakehouse, ray_address: str
) -> None:
    lh = seeded
    source = lh.table("raw.events").to_arrow().to_pylist()
    with served(lh.root) as uri:
        report = run_job(ray_address, uri, "raw.events", "raw.city_totals")
    # It ran on this test's cluster (2 CPUs), not on Daft's local runner.
    assert report["runner"] == "ray"
    assert report["cpus"] == 2.0
    assert table_totals(lh.table("raw.city_totals")) == totals_of(source)
    entry = lh.log("main", limit=1)[0]
    assert entry.tables == ["raw.city_totals"]
    assert entry.message == "append raw.city_totals (iceberg-rest)"
    assert entry.properties["added-records"] == str(len(CITIES))


def test_daft_writes_on_a_branch_uri_and_phlo_merges_it(
    seeded: phlo.Lakehouse, ray_address: str
) -> None:
    lh = seeded
    lh.create_branch("daft")
    # The branch gets rows main does not have: Daft must read the branch, not main.
    lh.table("raw.events", "daft").append(events(10_000, 700))
    on_branch = lh.table("raw.events", "daft").to_arrow().to_pylist()
    with served(lh.root) as uri:
        report = run_job(ray_address, f"{uri}/iceberg/daft", "raw.events", "raw.city_totals")
    assert report["runner"] == "ray"
    expected = totals_of(on_branch)
    assert table_totals(lh.table("raw.city_totals", "daft")) == expected
    with pytest.raises(NoSuchTableError):
        lh.table("raw.city_totals")  # main is untouched until the merge

    lh.merge("daft")
    assert table_totals(lh.table("raw.city_totals")) == expected
    assert lh.table("raw.events").to_arrow().num_rows == len(on_branch)
