"""What a run says while it waits: each retry of a source that raised ("flaky: attempt 1 of 4
failed (ConnectionError: refused); retrying in 30s") is shown as it happens, so that a command
waiting out the default 30 + 60 + 120 s of retries does not look hung. Before, the line
reached the terminal only through Python's last-resort logging handler (gone as soon as
anything configured logging) and never from `phlo backfill --parallel`'s workers."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

__all__ = ["RETRY", "retries_shown"]

#: The logger phlo's extraction announces its retries on (`phlo.ingestion.sources`).
_SOURCES = "phlo.ingestion.sources"
#: The prefix of a retry notice on stderr.
RETRY = "retry: "


class _Handler(logging.Handler):
    def __init__(self, emit: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self._emit = emit

    def emit(self, record: logging.LogRecord) -> None:
        self._emit(record.getMessage())


@contextlib.contextmanager
def retries_shown(emit: Callable[[str], None]) -> Iterator[None]:
    """Calls `emit(message)` for each retry notice while the block runs (and only then: the
    notices are not also passed to the application's logging)."""
    logger = logging.getLogger(_SOURCES)
    handler = _Handler(emit)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
