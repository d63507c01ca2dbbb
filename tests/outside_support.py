"""What the tests of phlo beside other engines share: the seeded raw.t and its plain-Python
model, a phlo write held at a failpoint in a child process, PyIceberg's SqlCatalog on the
lakehouse's catalog database, DuckDB through `phlo catalog serve`, and the checks that phlo
and PyIceberg read the model."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table
from pyiceberg.types import NestedField
from tests.duckdb_support import duckdb_rest

import phlo
import process_support
from phlo.catalog_server import CatalogServer

Row = dict[str, Any]
Model = dict[int, str]
# raw.t holds keys 0..29 in three files of ten rows.
BEFORE: Model = {k: "a" for k in range(30)}

UPSERT = {5: "A", 15: "A", 99: "new"}

# Writes held in a child process: (code run in the child, what it does to the model).
HELD: dict[str, tuple[str, Callable[[Model], Model]]] = {
    "compaction": ("lh.table('raw.t').compact()", lambda m: m),
    "merge-on-read merge": (
        f"lh.table('raw.t').merge(batch({UPSERT}), 'id', write_mode='merge-on-read')",
        lambda m: {**m, **UPSERT},
    ),
    "copy-on-write merge": (
        f"lh.table('raw.t').merge(batch({UPSERT}), 'id', write_mode='copy-on-write')",
        lambda m: {**m, **UPSERT},
    ),
    "merge-on-read delete": (
        "lh.table('raw.t').delete(('id', '<', 3), write_mode='merge-on-read')",
        lambda m: {k: v for k, v in m.items() if k >= 3},
    ),
}

# A branch merge that must rebase (main moved since dev forked): it writes new manifests and
# metadata before the catalog applies it.
BRANCH_MERGE = "lh.merge('dev', 'main')"


def outcome_of(
    write: Callable[[], object], lost: tuple[type[BaseException], ...], attempts: int = 6
) -> str:
    """A racing writer's result: "ok", "conflict" when every attempt lost the race in a `lost`
    way (nothing landed), else the unexpected error, reported (it fails the test)."""
    for _ in range(attempts):
        try:
            write()
            return "ok"
        except lost:
            continue
        except Exception as e:
            return f"{type(e).__name__}: {e}"
    return "conflict"


def batch(model: Model) -> pa.Table:
    return pa.table({"id": pa.array(list(model), pa.int64()), "v": list(model.values())})


def seeded(catalog: str, tmp_path: Path) -> phlo.Lakehouse:
    """A lakehouse on `catalog` whose raw.t holds BEFORE in three files."""
    warehouse = f"file://{(tmp_path / 'warehouse').resolve()}"
    lakehouse = phlo.Lakehouse.connect(catalog=catalog, warehouse=warehouse)
    lakehouse.create_namespace("raw")
    table = lakehouse.create_table("raw.t", {"id": pa.int64(), "v": pa.string()})
    for start in (0, 10, 20):
        table.append(batch({k: BEFORE[k] for k in range(start, start + 10)}))
    return lakehouse


def _write(catalog: str, warehouse: str, code: str, point: str, folder: str, outcome) -> None:
    """The writer's process: arms `point`, connects and runs `code` (`lh`, `batch` and `pa`
    are defined); puts its outcome, ("ok", "") or (error type, message)."""
    os.environ["PHLO_FAILPOINTS"] = f"{point}:pause"
    os.environ["PHLO_FAILPOINT_DIR"] = folder
    lh = phlo.Lakehouse.connect(catalog=catalog, warehouse=warehouse)
    try:
        exec(code, {"lh": lh, "batch": batch, "pa": pa})
        outcome.put(("ok", ""))
    except Exception as e:
        outcome.put((type(e).__name__, str(e)))


class Writer:
    """A process of its own running `code` (a write; `lh` and `batch` are defined), held at
    failpoint `point`."""

    def __init__(self, lh: phlo.Lakehouse, catalog: str, code: str, point: str, folder: Path):
        folder.mkdir()
        self.paused, self.resume = folder / f"{point}.paused", folder / f"{point}.resume"
        ctx = process_support.context()
        self.outcome = ctx.Queue()
        self.proc = ctx.Process(
            target=_write, args=(catalog, lh.warehouse, code, point, str(folder), self.outcome)
        )
        self.proc.start()
        while not self.paused.exists():
            assert self.proc.is_alive(), "the writer ended before reaching its failpoint"
            time.sleep(0.01)

    def finish(self) -> tuple[str, str]:
        """Resumes the writer; its outcome: ("ok", "") or (error type, message)."""
        self.resume.touch()
        kind, message = self.outcome.get(timeout=300)
        self.proc.join(timeout=60)
        assert self.proc.exitcode == 0, self.proc.exitcode
        return kind, message

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(timeout=60)


@contextlib.contextmanager
def held(lh: phlo.Lakehouse, catalog: str, code: str, point: str, folder: Path) -> Iterator[Writer]:
    writer = Writer(lh, catalog, code, point, folder)
    try:
        yield writer
    finally:
        if writer.proc.is_alive():
            writer.kill()


def optional(id: int, name: str, type: Any) -> NestedField:
    """A field that may be null, as PyIceberg declares it."""
    return NestedField(id, name, type, required=False)


def sql_catalog(lh: phlo.Lakehouse) -> SqlCatalog:
    """PyIceberg's SqlCatalog on the lakehouse's catalog database."""
    return SqlCatalog("phlo", uri=lh.catalog_uri, warehouse=lh.warehouse)


@contextlib.contextmanager
def pyiceberg_table(lh: phlo.Lakehouse) -> Iterator[Table]:
    """raw.t loaded by PyIceberg's SqlCatalog, its connections closed afterwards."""
    catalog = sql_catalog(lh)
    try:
        yield catalog.load_table("raw.t")
    finally:
        catalog.engine.dispose()


def pyiceberg(lh: phlo.Lakehouse, write: Callable[[Table], None]) -> None:
    with pyiceberg_table(lh) as table:
        write(table)


def duckdb(lh: phlo.Lakehouse, *statements: str) -> None:
    """Runs `statements` in DuckDB through `lh`'s REST catalog, or one served for the call."""
    if lh.catalog_uri.startswith("http"):
        duckdb_rest(lh.catalog_uri, "main", list(statements))
        return
    with CatalogServer(lh, port=0) as server:
        duckdb_rest(server.uri, "main", list(statements))


def assert_reads(lh: phlo.Lakehouse, model: Model, when: str) -> None:
    """phlo and PyIceberg read exactly `model` from raw.t, and every file it references exists."""
    with pyiceberg_table(lh) as pyi:
        for task in pyi.scan().plan_files():
            for file in [task.file, *task.delete_files]:
                path = Path(file.file_path.removeprefix("file://"))
                assert path.is_file(), f"{when}: raw.t references the missing {path}"
        for reader, table in [
            ("phlo", lh.table("raw.t").scan().to_arrow()),
            ("pyiceberg", pyi.scan().to_arrow()),
        ]:
            assert table.num_rows == len(model), (when, reader)
            assert {r["id"]: r["v"] for r in table.to_pylist()} == model, (when, reader)


def next_write_succeeds(lh: phlo.Lakehouse, model: Model) -> None:
    lh.table("raw.t").merge(batch({0: "next", 500: "next"}), "id")
    assert_reads(lh, {**model, 0: "next", 500: "next"}, "the next write")
