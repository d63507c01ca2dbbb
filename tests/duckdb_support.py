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
print(json.dumps([con.execute(sql).fetchall() for sql in statements], default=str))
"""


def duckdb_rest(uri: str, ref: str, statements: list[str]) -> list[list[list]]:
    """The rows each statement returns, run in order by one DuckDB connection that attached the
    REST catalog at `uri` as `lake` on `ref` (a branch name or "main")."""
    assert DUCKDB_ICEBERG.is_dir(), f"{DUCKDB_ICEBERG} is missing: run `make dev`"
    done = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            _CLIENT,
            uri,
            str(DUCKDB_ICEBERG),
            ref,
            json.dumps(statements),
        ],
        env={"PYTHONPATH": str(DUCKDB_ICEBERG), "HOME": str(DUCKDB_ICEBERG)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
