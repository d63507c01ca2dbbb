"""What an in-process dbt invocation leaves in phlo's process, and how phlo takes it back: the
DuckDB database dbt-duckdb keeps open, dbt's loggers (and the log file their handlers hold),
and the asyncio loop dbt-duckdb gives each thread that runs a Python model."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from phlo.errors import StorageError

__all__ = ["close_python_model_loops", "release"]

#: The Python loggers dbt's event loggers write through (dbt_common's ``LoggerConfig`` names:
#: the log file, and the terminal a ``dbt`` command prints to).
_DBT_LOGGERS = ("file_log", "stdout_log")


def release() -> StorageError | None:
    """Closes the DuckDB database dbt-duckdb keeps open (``keep_open``: the plugin's views live
    in it) and detaches dbt's loggers, closing the build's log file. Every step is attempted;
    the first that failed is returned as a `StorageError` (the others are noted on it), for
    the caller to raise unless the invocation ended with a more telling error."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt_common.events.event_manager_client import cleanup_event_logger

    def close_database() -> None:
        environment = DuckDBConnectionManager._ENV
        if environment is not None:
            environment.close()  # type: ignore[no-untyped-call]

    steps: list[tuple[str, Callable[[], object]]] = [
        ("closing dbt-duckdb's database", close_database),
        # Also forgets the closed environment, so the next build opens its own database.
        ("closing dbt-duckdb's connections", DuckDBConnectionManager.close_all_connections),
        ("detaching dbt's event loggers", cleanup_event_logger),
        ("closing dbt's log file", _close_log_handlers),
    ]
    failures: list[tuple[str, Exception]] = []
    for what, step in steps:
        try:
            step()
        except Exception as exc:  # the other steps still run
            failures.append((what, exc))
    if not failures:
        return None
    what, first = failures[0]
    error = StorageError(f"{what} after a dbt invocation failed: {first}")
    error.__cause__ = first
    for other, later in failures[1:]:
        error.add_note(f"{other} failed too: {later}")
    return error


def _close_log_handlers() -> None:
    """dbt replaces these handlers at its next invocation without closing them: the previous
    build's log file would stay open (in a folder phlo removes) until garbage-collected."""
    for name in _DBT_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()


def close_python_model_loops() -> None:
    """Makes dbt-duckdb close the asyncio loop it sets for a Python model in a thread that had
    none (dbt's worker threads): it never closes it, and each ended worker thread leaves an
    unclosed loop behind (a ``ResourceWarning`` when collected). The thread gets a loop for the
    model's run, as dbt-duckdb intends, and none after it. Idempotent."""
    from dbt.adapters.duckdb.environments import Environment

    run_python_job = Environment.__dict__["run_python_job"].__func__
    if getattr(run_python_job, "_phlo_closes_loop", False):
        return

    @functools.wraps(run_python_job)
    def with_own_loop(cls: type, *args: Any, **kwargs: Any) -> Any:
        if _has_event_loop():
            return run_python_job(cls, *args, **kwargs)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return run_python_job(cls, *args, **kwargs)
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    with_own_loop._phlo_closes_loop = True  # type: ignore[attr-defined]
    Environment.run_python_job = classmethod(with_own_loop)  # type: ignore[assignment,method-assign]


def _has_event_loop() -> bool:
    """Whether the thread has a loop; the main thread counts as having one (asyncio makes it
    one when asked, which dbt-duckdb would also do: the process's, not one per thread)."""
    if threading.current_thread() is threading.main_thread():
        return True
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        return False
    return True
