"""Ctrl-C while Dagster runs in this process. Dagster replaces the SIGINT handler during a run
and turns an interrupted step into a step *retry* (its retry policy; in-process runs cannot
turn that off), so a Ctrl-C during `phlo materialize` would be swallowed: the step would start
again after its retry delay and the run would be published. The C-level wakeup file
descriptor sees every signal whichever Python handler is installed, so a watcher thread
notices the interrupt and ends the command at once, as a kill would: phlo's commits are
atomic and the run writes to its own branch, so the target is untouched and a re-run writes
the partition anew."""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import threading
from collections.abc import Callable, Iterator

__all__ = ["on_interrupt"]

_STOPPING = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def on_interrupt(stop: Callable[[], None]) -> Iterator[None]:
    """Calls `stop` (on a watcher thread; it should end the process) when SIGINT or SIGTERM
    arrives while the block runs. Off the main thread, where no signal arrives, does
    nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reader, writer = socket.socketpair()
    done_reader, done_writer = socket.socketpair()
    writer.setblocking(False)
    previous = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)

    def watch() -> None:
        while True:
            ready, _, _ = select.select([reader, done_reader], [], [])
            if done_reader in ready:
                return
            if any(number in _STOPPING for number in reader.recv(4096)):
                stop()
                return

    watcher = threading.Thread(target=watch, name="phlo-interrupts", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        done_writer.send(b"x")
        watcher.join()
        for end in (reader, writer, done_reader, done_writer):
            end.close()
