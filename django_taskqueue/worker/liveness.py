"""Whether a worker's loop still turns: for ``--health-port`` and systemd's watchdog.

The coordinator calls :meth:`Liveness.turn` at each turn of its loop, which happens at
least every few seconds even when idle. A loop stuck in a call that never returns stops
turning while the process lives on: that is what a liveness probe must catch.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

logger = logging.getLogger("django_taskqueue")

# A loop that has not turned for this long is stuck (default of --health-timeout).
HEALTH_TIMEOUT = 60.0


class SystemdNotifier:
    """``sd_notify()`` over $NOTIFY_SOCKET: READY=1 at start, WATCHDOG=1 while the loop
    turns (at most every half of $WATCHDOG_USEC), STOPPING=1 at a clean stop."""

    def __init__(self, address: str, watchdog: float | None) -> None:
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog = watchdog
        self._next = 0.0

    @classmethod
    def from_environment(cls) -> SystemdNotifier | None:
        address = os.environ.get("NOTIFY_SOCKET")
        if not address:
            return None
        watchdog_pid = os.environ.get("WATCHDOG_PID")
        usec = os.environ.get("WATCHDOG_USEC")
        watched = usec and (not watchdog_pid or watchdog_pid == str(os.getpid()))
        return cls(address, int(usec) / 1e6 if watched and usec else None)

    def send(self, message: str) -> None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall(message.encode())
        except OSError as exc:
            logger.warning("could not notify systemd (%s): %s", message, exc)

    def alive(self, now: float) -> None:
        if self.watchdog is not None and now >= self._next:
            self._next = now + self.watchdog / 2
            self.send("WATCHDOG=1")


class Liveness:
    """When the loop last turned (``time.monotonic()``, which is system-wide on Linux,
    so a supervisor can read its children's in ``shared``)."""

    def __init__(self, shared: Any = None, slot: int = 0, notify: bool = True) -> None:
        self.turned_at = time.monotonic()
        self.shared = shared  # a multiprocessing Array('d') under --processes
        self.slot = slot
        self.notifier = SystemdNotifier.from_environment() if notify else None
        if shared is not None:
            shared[slot] = self.turned_at

    def turn(self) -> None:
        now = self.turned_at = time.monotonic()
        if self.shared is not None:
            self.shared[self.slot] = now
        if self.notifier is not None:
            self.notifier.alive(now)

    def started(self) -> None:
        if self.notifier is not None:
            self.notifier.send("READY=1")
        self.turn()

    def stopping(self) -> None:
        if self.notifier is not None:
            self.notifier.send("STOPPING=1")

    def stuck_for(self, timeout: float) -> float | None:
        """Seconds since the loop turned if more than ``timeout``, else None."""
        since = time.monotonic() - self.turned_at
        return since if since > timeout else None
