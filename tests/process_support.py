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
    """Runs with the environment the test had when it made the process, as a spawned one
    does: the server's own environment is the one of the test that started it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._environ = dict(os.environ)

    def run(self) -> None:
        os.environ.clear()
        os.environ.update(self._environ)
        super().run()


class _Context(multiprocessing.context.ForkServerContext):
    Process = _Process


def context() -> mp.context.BaseContext:
    """The context whose Process, Queue and Barrier the racing tests use."""
    ctx = _Context()
    ctx.set_forkserver_preload(PRELOAD)
    return ctx
