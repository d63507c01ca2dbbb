"""What every benchmark shares: fresh spawned processes per measured case, and their memory.

Peak memory is read from `/proc/self/status` (`VmHWM`) inside the measured process itself:
`getrusage` and `/usr/bin/time` can report a forked parent's peak instead.
"""

from __future__ import annotations

import multiprocessing as mp
import queue as queues
from collections.abc import Callable
from pathlib import Path
from typing import Any


def rss_mb(key: str = "VmHWM:") -> float:
    """This process's peak (`VmHWM:`) or current (`VmRSS:`) resident memory in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return rss_mb("VmHWM:")


def spawn(target: Callable[..., None], *args: Any, result: bool = True) -> Any:
    """Runs `target(*args, queue)` in a fresh spawned process and returns what it put on the
    queue (nothing when `result` is false). A child that dies is an error, not a hang."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=target, args=(*args, queue))
    process.start()
    value = None
    while result:
        try:
            value = queue.get(timeout=1)
            break
        except queues.Empty:
            if not process.is_alive():
                raise RuntimeError(
                    f"{target.__name__} died (exit code {process.exitcode})"
                ) from None
    process.join()
    if process.exitcode:
        raise RuntimeError(f"{target.__name__} failed (exit code {process.exitcode})")
    return value
