"""A hard time limit on Python code running in the current thread.

`Deadline.enforce()` interrupts the code of its ``with`` block once the deadline has passed by
raising `DeadlineInterrupt` in it — a `BaseException`, like `KeyboardInterrupt`, so a
source's ``except Exception`` (a retry loop, dlt's step wrappers) does not swallow it — and
raises it again every `REPEAT` seconds until the block has exited.

How the interrupt gets in:

- On the main thread (where signals are delivered), with ``SIGALRM`` free: a ``setitimer``
  alarm whose handler raises. A signal also breaks blocking system calls: ``time.sleep``, a
  socket read from a stalled server, waiting on a lock or a subprocess.
- On any other thread (a Dagster executor thread, a thread pool): a watchdog thread injects the
  exception with ``PyThreadState_SetAsyncExc``. It lands at the next Python instruction, so
  code stuck *inside* one C call (a socket read without a timeout, a long native
  computation) is interrupted only when that call returns; loops of short calls
  (``time.sleep(1)`` in a ``while``, paginated requests with timeouts) are interrupted
  promptly.

Neither reaches into other threads or processes the code started (a thread pool's workers,
dlt's parallelised resources): they end when the interrupted code stops waiting for them.
"""

from __future__ import annotations

import ctypes
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["REPEAT", "Deadline", "DeadlineInterrupt"]

#: Seconds between interrupts while the interrupted block has not exited.
REPEAT = 0.25


class DeadlineInterrupt(BaseException):
    """Raised inside a block whose deadline passed (see `Deadline.enforce`)."""


class Deadline:
    """An instant `at` on the `time.monotonic` clock."""

    def __init__(self, at: float) -> None:
        self.at = at
        #: Whether an interrupt was raised (or injected) by `enforce`.
        self.fired = False
        self._guard: _Guard | None = None

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    @contextmanager
    def enforce(self) -> Iterator[None]:
        """Interrupts the block with `DeadlineInterrupt` once the deadline passes."""
        if self.expired():
            self.fired = True
            raise DeadlineInterrupt
        if _can_use_alarm():
            guard: _Guard = _AlarmGuard(self)
        else:
            guard = _ThreadGuard(self)
        self._guard = guard
        guard.arm()
        try:
            yield
        finally:
            self.close()

    def close(self) -> None:
        """Stops interrupting (idempotent). `enforce` calls it when its block exits; callers
        call it again in their own ``finally`` for the case an interrupt lands in the instant
        between the block's end and that call."""
        if self._guard is not None:
            _disarm(self._guard)
            self._guard = None


class _Guard:
    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.armed = False

    def arm(self) -> None:
        raise NotImplementedError

    def disarm(self) -> None:
        raise NotImplementedError


def _disarm(guard: _Guard) -> None:
    """Disarms `guard`, absorbing interrupts that land while it does (the alarm or the
    watchdog may fire between the block's end and the disarm)."""
    while True:
        try:
            guard.disarm()
            return
        except DeadlineInterrupt:
            continue


def _can_use_alarm() -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    if not hasattr(signal, "setitimer"):
        return False
    # Someone else's alarm (pytest-timeout, the user's own) stays theirs.
    return signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None) and signal.getitimer(
        signal.ITIMER_REAL
    ) == (0.0, 0.0)


class _AlarmGuard(_Guard):
    def arm(self) -> None:
        self.armed = True
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.setitimer(signal.ITIMER_REAL, max(self.deadline.remaining(), 1e-3), REPEAT)

    def _on_alarm(self, signum: int, frame: object) -> None:
        if self.armed:
            self.deadline.fired = True
            raise DeadlineInterrupt

    def disarm(self) -> None:
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


class _ThreadGuard(_Guard):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__(deadline)
        self.thread_id = threading.get_ident()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.watchdog = threading.Thread(target=self._watch, name="phlo-deadline", daemon=True)

    def arm(self) -> None:
        self.armed = True
        self.watchdog.start()

    def _watch(self) -> None:
        wait = self.deadline.remaining()
        while not self.stop.wait(wait):
            with self.lock:
                if not self.armed:
                    return
                self.deadline.fired = True
                _set_async_exc(self.thread_id, DeadlineInterrupt)
            wait = REPEAT

    def disarm(self) -> None:
        with self.lock:
            self.armed = False
            if self.deadline.fired:
                _set_async_exc(self.thread_id, None)  # drop one not yet delivered
        self.stop.set()


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )
