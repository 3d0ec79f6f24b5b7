"""Database calls that never answer. When the network drops a connection's packets
without resetting it (a half-open connection: a firewall's idle timeout, a failed-over
address, a cut cable), a call on it waits for ever, and no error ever comes to recover
from. The watchdog gives each of the worker's own calls a deadline and, past it, shuts
the connection's socket down: the call then fails like any lost connection, and the
worker reconnects once the network heals."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("django_taskqueue")

# Seconds a new connection may take to open, unless the database's OPTIONS say.
CONNECT_TIMEOUT = 10


class Watchdog:
    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._watched: dict[int, tuple[float, tuple[Any, ...]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="taskqueue-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    @contextmanager
    def watch(self, *connections: Any) -> Iterator[None]:
        """Cut ``connections`` (Django's wrappers) if the block runs past the limit."""
        thread = threading.get_ident()
        with self._lock:
            self._watched[thread] = (time.monotonic() + self.limit, connections)
        try:
            yield
        finally:
            with self._lock:
                self._watched.pop(thread, None)

    def _run(self) -> None:
        while not self._stop.wait(min(0.5, self.limit / 4)):
            now = time.monotonic()
            with self._lock:
                late = [(t, c) for t, (d, c) in self._watched.items() if d <= now]
                for thread, _ in late:
                    del self._watched[thread]
            for _, connections in late:
                for connection in connections:
                    cut(connection, self.limit)


def cut(connection: Any, limit: float) -> None:
    """Shut the socket of ``connection`` down: a call blocked on it fails at once."""
    driver = connection.connection
    if driver is None:
        return
    try:
        fd = driver.fileno()
    except Exception:
        return  # no socket (SQLite) or already closed
    logger.warning(
        "a database call on %r got no answer within %gs; cutting the connection (the "
        "network may have dropped it without a reset)",
        connection.alias,
        limit,
    )
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()
