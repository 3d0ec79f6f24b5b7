"""Wake-up when a task is enqueued (PostgreSQL's LISTEN/NOTIFY): a hint to claim now;
polling stays the truth."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from ..db import queue_db

logger = logging.getLogger("django_taskqueue")


class Listener(threading.Thread):
    """Holds its own connection in LISTEN and calls ``on_notify`` for matching queues."""

    def __init__(
        self,
        using: str,
        on_notify: Callable[[], None],
        queues: Sequence[str] | None = None,
        on_error: Callable[[], None] | None = None,
        on_control: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(name="taskqueue-listener", daemon=True)
        self.using = using
        self.on_notify = on_notify
        self.queues = set(queues) if queues else None
        self.on_error = on_error
        self.on_control = on_control  # the paused queues changed
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
            db = queue_db(self.using)
            conn = None
            try:
                conn = db.listen()
                self.listening.set()
                failures = 0
                # A notification that came while we were not listening is covered by
                # the claim the worker makes after (re)connecting.
                self.on_notify()
                while not self.stopping.is_set():
                    for payload in db.notifications(conn, timeout=1.0):
                        if payload is None:
                            if self.on_control is not None:
                                self.on_control()
                        elif self._wanted(payload):
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
