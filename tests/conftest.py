"""Shared fixtures: a fresh embedded lakehouse per test and generated event data."""

from __future__ import annotations

import datetime as dt
import os
import tempfile

import pyarrow as pa
import pytest

import phlo


def _memory_tempdir(folder: str = "/dev/shm", need: int = 4 << 30) -> str | None:
    """`folder` when it is a writable tmpfs with `need` bytes free (Docker's default 64 MB
    /dev/shm is not), else None."""
    try:
        with open("/proc/mounts") as mounts:
            tmpfs = any(f.split()[1:3] == [folder, "tmpfs"] for f in mounts)
        stat = os.statvfs(folder)
    except OSError:
        return None
    fits = stat.f_bavail * stat.f_frsize >= need and os.access(folder, os.W_OK)
    return folder if tmpfs and fits else None


# The tests' files (tmp_path, the servers' data, Dagster homes, dbt work folders) go to memory
# when the machine has room: every commit fsyncs SQLite and data files, and on a disk those
# waits double the wall time of I/O-heavy tests. An explicit TMPDIR wins; subprocesses and
# xdist workers inherit the choice through TMPDIR.
if "TMPDIR" not in os.environ and (_memory := _memory_tempdir()):
    os.environ["TMPDIR"] = tempfile.tempdir = _memory

# No network at test time: keep every library's telemetry off.
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("DAFT_ANALYTICS_ENABLED", "0")

# The files that cost most (CPU-s, docs/benchmarks.md "Where the suite's time goes"), most
# first; the others follow in file-name order. `make test-python` hands whole files to its two
# workers in collection order (`--dist loadfile --no-loadscope-reorder`), so long files start
# early and short ones fill in at the end. xdist's own order (most tests first) left the dbt
# files, few tests but long ones, for last.
LONGEST_FIRST = [
    "test_dagster_publishing.py",
    "test_example_glucose.py",
    "test_dbt_build.py",
    "test_dbt.py",
    "test_cli_project.py",
    "test_outside_delete_files.py",
    "test_outside_pipeline_kills.py",
    "test_dagster_wap.py",
    "test_distributed_dagster.py",
    "test_contention.py",
    "test_outside_random_kills.py",
    "test_outside_compaction_races.py",
    "test_outside_parquet_files.py",
    "test_s3_requests.py",
    "test_merge_on_read.py",
    "test_outside_transforms.py",
    "test_bad_input.py",
    "test_validation_differential.py",
    "test_crash.py",
    "test_catalog_server.py",
    "test_outside_maintenance_races.py",
    "test_dagster_cli.py",
    "test_outside_concurrent_engines.py",
    "test_duckdb_interop.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: keeps the rest


EVENTS_SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("ts", pa.timestamp("us", tz="UTC")),
        pa.field("category", pa.string()),
        pa.field("value", pa.float64()),
    ]
)


def make_events(start: int, n: int, days: int = 3) -> pa.Table:
    """`n` events with ids from `start`, spread over `days` days from 2024-01-01."""
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return pa.table(
        {
            "id": pa.array(range(start, start + n), pa.int64()),
            "ts": pa.array(
                [base + dt.timedelta(days=i % days, seconds=i) for i in range(n)],
                pa.timestamp("us", tz="UTC"),
            ),
            "category": pa.array([("a", "b", "c")[i % 3] for i in range(n)]),
            "value": pa.array([i * 0.5 for i in range(n)], pa.float64()),
        },
        schema=EVENTS_SCHEMA,
    )


@pytest.fixture
def lh(tmp_path: os.PathLike[str]) -> phlo.Lakehouse:
    lakehouse = phlo.Lakehouse.open(tmp_path)
    lakehouse.create_namespace("raw")
    return lakehouse


@pytest.fixture
def events_table(lh: phlo.Lakehouse) -> phlo.Table:
    return lh.create_table("raw.events", EVENTS_SCHEMA, partition_by=[("ts", "day")])


# A real PostgreSQL server per session (`postgres_server`) and a fresh database per test.
from postgres_server import postgres_server, postgres_url  # noqa: E402, F401

# A real S3 server (SeaweedFS) per session (`s3_server`) and a fresh warehouse prefix per test.
from seaweedfs_server import s3_server, s3_warehouse  # noqa: E402, F401
