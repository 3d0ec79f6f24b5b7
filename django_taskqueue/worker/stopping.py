"""How a worker stops: SIGTERM and SIGINT (for the supervisor too), and the graceful
shutdown that follows (:func:`shut_down`).

The signals are handled outside the signal handler.

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

import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, InterfaceError

from ..connections import close_quietly

if TYPE_CHECKING:
    from .coordinator import Worker

logger = logging.getLogger("django_taskqueue")


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


class StopSignals:
    """A worker's SIGTERM/SIGINT handlers: the first stops it gracefully, a second
    exits at once (code 1).

    Under a supervisor, SIGINT is ignored (a terminal's Ctrl-C goes to the supervisor,
    which forwards SIGTERM) and a repeated SIGTERM is too: a service manager may signal
    every process of the group as well as the supervisor. The supervisor forces with
    SIGKILL. The signals are handled in a thread of their own (:class:`SignalRelay`).
    """

    def __init__(self, worker: Worker, *, supervised: bool) -> None:
        self.worker = worker
        self.supervised = supervised
        self._relay = SignalRelay(self._handle, name="taskqueue-signals")
        self._old: dict[int, Any] = {}

    def install(self) -> None:
        supervised = self.supervised
        self._relay.install([signal.SIGTERM] if supervised else [signal.SIGTERM, signal.SIGINT])
        if supervised:
            self._old[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def restore(self) -> None:
        self._relay.restore()
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        self._old.clear()

    def _handle(self, signum: int) -> None:
        worker = self.worker
        name = signal.Signals(signum).name
        if worker._stopping.is_set():
            if self.supervised:
                logger.info("%s again: still stopping", name)
                return
            logger.warning("%s again: exiting now, running tasks are abandoned", name)
            os._exit(1)
        logger.info(
            "%s: stopping; waiting up to %gs for %d running task(s)",
            name,
            worker.grace,
            len(worker._running),
        )
        worker.stop()


def shut_down(worker: Worker) -> None:
    """After the worker's loop: release the claimed tasks no thread started, wait up to
    ``grace`` for the running ones (acknowledging and extending their claims meanwhile),
    end the threads and acknowledge what finished."""
    unstarted = []
    while True:
        try:
            task = worker._ready.get_nowait()
        except queue.Empty:
            break
        if task is not None:
            unstarted.append(task)
    if unstarted:
        try:
            released = worker.db.release(worker.claimant, [t.pk for t in unstarted])
            logger.info("released %d claimed task(s) that had not started", released)
        except (DatabaseError, InterfaceError):
            logger.exception("could not release %d unstarted task(s)", len(unstarted))
        for task in unstarted:
            worker._held.pop(task.pk, None)
    deadline = time.monotonic() + worker.grace
    next_heartbeat = time.monotonic() + worker.heartbeat_interval
    while worker._running and time.monotonic() < deadline:
        worker._wake.wait(0.2)
        worker._wake.clear()
        try:
            worker._flush()
            if time.monotonic() >= next_heartbeat:
                worker._heartbeat()
                next_heartbeat = time.monotonic() + worker.heartbeat_interval
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("database error while stopping (%s)", exc)
            close_quietly(worker.using)
    for _ in worker._threads:
        worker._ready.put(None)
    if worker._listener is not None:
        worker._listener.stop()
    # Runs past their time limit: their error outcomes, kept until now so that no
    # retry can start while their threads may still be running (the process exits).
    worker._done.extend(worker.limits.outcomes())
    for attempt in range(5):
        try:
            worker._flush()
            break
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("could not acknowledge finished tasks (%s); retrying", exc)
            close_quietly(worker.using)
            time.sleep(0.2 * (attempt + 1))
    still_running = len(worker._running)
    unacknowledged = len(worker._done)
    if still_running or unacknowledged:
        logger.warning(
            "worker %s stopped with %d task(s) still running and %d unacknowledged; "
            "they run again once their claim expires",
            worker.lock_id,
            still_running,
            unacknowledged,
        )
        worker.exit_code = 1
    else:
        for thread in worker._threads:
            thread.join(timeout=1)
    worker.watchdog.stop()
    close_quietly(worker.using)
