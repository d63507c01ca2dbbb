"""DuckDB as an Iceberg REST client of `phlo catalog serve`: DuckDB 1.5.5 with its iceberg,
avro and httpfs extensions, installed apart from the venv's DuckDB (no extension wheels exist
for the venv's DuckDB 2.0) by `make dev` into .venv/duckdb-iceberg from
requirements-duckdb-iceberg.txt, and run in a subprocess that sees only that install."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DUCKDB_ICEBERG = Path(sys.prefix) / "duckdb-iceberg"

_CLIENT = """
import json, sys
import duckdb

uri, root, ref, statements = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
con = duckdb.connect(
    config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
)
for ext in ("httpfs", "avro", "iceberg"):
    con.execute(
        f"LOAD '{root}/duckdb_extension_{ext}/extensions/v{duckdb.__version__}/{ext}.duckdb_extension'"
    )
con.execute(f"ATTACH '{ref}' AS lake (TYPE iceberg, ENDPOINT '{uri}', AUTHORIZATION_TYPE 'none')")
if statements is not None:
    print(json.dumps([con.execute(sql).fetchall() for sql in statements], default=str))
    sys.exit()
for sql in sys.stdin:  # a session: one statement a line, one JSON answer a line
    try:
        print(json.dumps(["ok", con.execute(sql).fetchall()], default=str), flush=True)
    except Exception as e:
        print(json.dumps([type(e).__name__, str(e)]), flush=True)
"""


def _client(uri: str, ref: str, statements: list[str] | None) -> list[str]:
    assert DUCKDB_ICEBERG.is_dir(), f"{DUCKDB_ICEBERG} is missing: run `make dev`"
    args = [uri, str(DUCKDB_ICEBERG), ref, json.dumps(statements)]
    return [sys.executable, "-S", "-c", _CLIENT, *args]


_ENV = {"PYTHONPATH": str(DUCKDB_ICEBERG), "HOME": str(DUCKDB_ICEBERG)}


class DuckdbSession:
    """One DuckDB connection attached like `duckdb_rest`'s, kept open across statements (a
    transaction can span other writers' commits)."""

    def __init__(self, uri: str, ref: str = "main") -> None:
        self.proc = subprocess.Popen(
            _client(uri, ref, None),
            env=_ENV,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, sql: str) -> tuple[str, object]:
        """("ok", rows), or (DuckDB's error type, its message)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(sql.replace("\n", " ") + "\n")
        self.proc.stdin.flush()
        kind, answer = json.loads(self.proc.stdout.readline())
        return kind, answer

    def close(self) -> None:
        self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0


def duckdb_rest(uri: str, ref: str, statements: list[str]) -> list[list[list]]:
    """The rows each statement returns, run in order by one DuckDB connection that attached the
    REST catalog at `uri` as `lake` on `ref` (a branch name or "main")."""
    done = subprocess.run(
        _client(uri, ref, statements),
        env=_ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
