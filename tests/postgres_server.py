"""A real PostgreSQL for the tests: `PHLO_TEST_POSTGRES_URL` when CI gives one, else a server
of its own (initdb + pg_ctl) on a free port of 127.0.0.1, one per test session.

PostgreSQL refuses to run as root: as root, the data folder belongs to the `postgres` user and
the commands run as that user (`runuser`)."""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

_HINT = (
    "the PostgreSQL server binaries (initdb, pg_ctl) are needed for these tests: "
    "install them (`apt-get install postgresql`) or set PHLO_TEST_POSTGRES_URL to a server's URL"
)


class ServerError(RuntimeError):
    pass


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise ServerError(f"{name} not found: {_HINT}")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(command: list[str], what: str) -> None:
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise ServerError(f"{what} failed ({done.returncode}): {done.stderr or done.stdout}")


@contextlib.contextmanager
def running_server(password: str | None = None) -> Iterator[str]:
    """Starts a throwaway server and yields its URL (database `postgres`, user `phlo`, no
    password, or `password` required); stops it and removes its files at the end."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    folder = Path(tempfile.mkdtemp(prefix="phlo-pg-"))
    data = folder / "data"
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        auth = ["--auth=trust"]
        if password is not None:
            (folder / "pw").write_text(password)
            auth = ["--auth=scram-sha-256", f"--pwfile={folder / 'pw'}"]
        # --no-locale: the environment's locale (LANG) may not be installed, and initdb refuses
        # one it cannot load.
        _run([initdb, "-D", str(data), "-U", "phlo", *auth, "-E", "UTF8", "--no-locale"], "initdb")
        port = _start(pg_ctl, data, folder)
        try:
            user = "phlo" if password is None else f"phlo:{password}"
            yield f"postgresql://{user}@127.0.0.1:{port}/postgres"
        finally:
            _run([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], "pg_ctl stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _start(pg_ctl: str, data: Path, folder: Path) -> int:
    """Starts the server of `data` on a free port; the port. Again on another port when
    another process took the port after `_free_port` saw it free."""
    for attempt in itertools.count(1):
        port = _free_port()
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = folder / f"log-{attempt}"
        try:
            _run(
                [pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"],
                "pg_ctl start",
            )
            return port
        except ServerError:
            if attempt == 5 or "already in use" not in log.read_text(errors="replace"):
                raise


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server: `PHLO_TEST_POSTGRES_URL`, or one started here."""
    given = os.environ.get("PHLO_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(running_server())
        except ServerError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(postgres_server)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as con:
            con.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
