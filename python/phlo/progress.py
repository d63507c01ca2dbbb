"""A live line in Jupyter while a long operation runs: what it is doing and for how long.

phlo's engine releases the GIL, so a thread can keep the cell's output current while the
operation blocks the cell: an ingestion run, quality checks, a dbt build or a publish shows
``running … 12.4 s`` after a second and ``done in 14.1 s`` at the end. Operations that finish
within a second show nothing. Outside a Jupyter kernel (scripts, the CLI, which has its own
progress bars, Dagster) `activity` does nothing.
"""

from __future__ import annotations

import functools
import html
import importlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

__all__ = ["SHOW_AFTER_SECONDS", "activity", "shows_activity"]

P = ParamSpec("P")
R = TypeVar("R")

#: Operations shorter than this show no line.
SHOW_AFTER_SECONDS = 1.0
_TICK_SECONDS = 0.5


def _in_kernel() -> bool:
    """True inside a Jupyter kernel (not a plain IPython terminal, not a script)."""
    shell_module = sys.modules.get("IPython")
    if shell_module is None:
        return False
    shell = shell_module.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _ipython_display() -> Any:
    """IPython.display (untyped; loaded only inside a kernel)."""
    return importlib.import_module("IPython.display")


def _line(text: str) -> Any:
    line = f'<div class="phlo-activity" style="color:#666">{html.escape(text)}</div>'
    return _ipython_display().HTML(line)


@contextmanager
def activity(label: str) -> Iterator[None]:
    """Shows `label` with the elapsed time in the running cell while the block runs, once it
    has run for `SHOW_AFTER_SECONDS`; then how long it took (or that it failed)."""
    if not _in_kernel():
        yield
        return
    ipython = _ipython_display()
    # An empty placeholder in the cell's output, filled once the operation took a second.
    handle = ipython.display(ipython.HTML(""), display_id=True)
    started = time.monotonic()
    stop = threading.Event()
    shown = threading.Event()

    def tick() -> None:
        while not stop.wait(_TICK_SECONDS):
            elapsed = time.monotonic() - started
            if elapsed >= SHOW_AFTER_SECONDS:
                handle.update(_line(f"{label} … {elapsed:.1f} s"))
                shown.set()

    ticker = threading.Thread(target=tick, name="phlo-activity", daemon=True)
    ticker.start()
    outcome = "done"
    try:
        yield
    except BaseException:
        outcome = "failed"
        raise
    finally:
        stop.set()
        ticker.join()
        if shown.is_set():
            handle.update(_line(f"{label}: {outcome} in {time.monotonic() - started:.1f} s"))


def shows_activity(label: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorates a long operation so it runs inside `activity(label)`."""

    def decorate(operation: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(operation)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with activity(label):
                return operation(*args, **kwargs)

        return run

    return decorate
