"""Handling SIGTERM and SIGINT outside the signal handler.

Python runs a signal handler in the main thread between two bytecodes: possibly while
that thread holds a lock (inside ``Event.set()`` or ``clear()``, a logging handler, a
queue), or while it is still running the handler for an earlier signal. A handler that
takes the same non-reentrant lock then waits for itself forever. A service manager
that signals a whole process group (systemd's default) sends a worker two SIGTERMs at
once, one of its own and one forwarded by the supervisor, which made that happen.

So the handler only puts the signal number on a ``SimpleQueue``, whose ``put()`` takes
no lock, and a daemon thread does the work: logging, stopping, exiting.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Any


class SignalRelay:
    """Calls ``callback(signum)`` in a thread of its own for each signal received."""

    def __init__(self, callback: Callable[[int], None], name: str) -> None:
        self.callback = callback
        self.name = name
        self._queue: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self._old: dict[int, Any] = {}
        self._thread: threading.Thread | None = None

    def install(self, signums: Iterable[int]) -> None:
        """Start relaying ``signums`` (from the main thread, as Python requires)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        for signum in signums:
            self._old[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        """Put the previous handlers back and end the thread."""
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        self._old.clear()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def _handle(self, signum: int, frame: Any) -> None:
        self._queue.put(signum)

    def _run(self) -> None:
        while (signum := self._queue.get()) is not None:
            self.callback(signum)
