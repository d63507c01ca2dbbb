"""Processes for the tests that race writers against each other or hold one at a failpoint.

A spawned process starts a new interpreter and imports phlo, pyarrow and PyIceberg again:
~1.2 CPU-s before it writes anything, for each of the suite's hundred-odd racing writers. A
forkserver child is forked from a server process that imported them once, when the first child
was asked for; it is still a separate process with its own catalog connections, never a fork
of the test process (whose engine threads and open handles a plain fork would copy)."""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.context
import os
from typing import Any

# What the test modules that hold the writers import (a child imports its target's module).
PRELOAD = [
    "pytest",
    "pyarrow.parquet",
    "pandas",
    "pandera.pandas",
    "phlo",
    "phlo.cli",
    "pyiceberg.catalog.sql",
    "pyiceberg.catalog.rest",
    "pyiceberg.table",
    "duckdb",
]


class _Process(multiprocessing.context.ForkServerProcess):
    """Runs with the environment and working folder the test had when it made the process,
    as a spawned one does: the server's own are those of the test that started it (a
    project's phlo.yaml in a folder a test moved into would reach later tests' processes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._environ = dict(os.environ)
        self._cwd = os.getcwd()

    def run(self) -> None:
        os.environ.clear()
        os.environ.update(self._environ)
        os.chdir(self._cwd)
        super().run()


class _Context(multiprocessing.context.ForkServerContext):
    Process = _Process


def context() -> mp.context.BaseContext:
    """The context whose Process, Queue and Barrier the racing tests use."""
    ctx = _Context()
    ctx.set_forkserver_preload(PRELOAD)
    return ctx
