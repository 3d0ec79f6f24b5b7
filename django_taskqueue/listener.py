"""Wake-up on PostgreSQL LISTEN/NOTIFY: a hint to claim now; polling stays the truth."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from django.db import connections

logger = logging.getLogger("django_taskqueue")

CHANNEL = "django_taskqueue"


def can_listen(using: str) -> bool:
    """PostgreSQL through psycopg 3.2+ (whose ``notifies()`` takes a timeout)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return False
    try:
        import psycopg
    except ImportError:
        return False
    major, minor = (int(part) for part in psycopg.__version__.split(".")[:2])
    return (major, minor) >= (3, 2)


class Listener(threading.Thread):
    """Holds its own connection in LISTEN and calls ``on_notify`` for matching queues."""

    def __init__(
        self,
        using: str,
        on_notify: Callable[[], None],
        queues: Sequence[str] | None = None,
        on_error: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name="taskqueue-listener", daemon=True)
        self.using = using
        self.on_notify = on_notify
        self.queues = set(queues) if queues else None
        self.on_error = on_error
        self.stopping = threading.Event()
        self.listening = threading.Event()

    def stop(self) -> None:
        self.stopping.set()

    def _wanted(self, payload: str) -> bool:
        if self.queues is None or not payload:
            return True
        return bool(self.queues & set(payload.split(",")))

    def run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            wrapper = connections[self.using]
            conn = None
            try:
                conn = wrapper.get_new_connection(wrapper.get_connection_params())
                conn.autocommit = True
                conn.execute(f"LISTEN {CHANNEL}")
                self.listening.set()
                failures = 0
                # A notification that came while we were not listening is covered by
                # the claim the worker makes after (re)connecting.
                self.on_notify()
                while not self.stopping.is_set():
                    for notify in conn.notifies(timeout=1.0):
                        if self._wanted(notify.payload):
                            self.on_notify()
            except Exception as exc:
                self.listening.clear()
                if self.on_error is not None:
                    self.on_error()
                failures += 1
                delay = min(30.0, 0.5 * 2**failures)
                logger.warning("LISTEN connection failed (%s); retrying in %.1fs", exc, delay)
                self.stopping.wait(delay)
            finally:
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        logger.debug("closing the LISTEN connection raised", exc_info=True)
