"""The worker's clock: the database server's, so that hosts whose clocks disagree
still agree on when a claim expires and when a task is due."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from ..db import QueueDatabase

logger = logging.getLogger("django_taskqueue")

# An offset beyond this is logged: the host's clock is wrong, and NTP should fix it.
WARN_OFFSET = timedelta(seconds=1)


class DatabaseClock:
    """Now on the database's clock: the host's clock plus the offset measured at the
    last :meth:`sync` (one small query, at each heartbeat)."""

    def __init__(self, db: QueueDatabase) -> None:
        self.db = db
        self.offset = timedelta(0)
        self._warned = False

    def sync(self) -> None:
        before = timezone.now()
        server = self.db.database_now()
        after = timezone.now()
        # The server read its clock somewhere in the round trip: take the middle.
        self.offset = server - (before + (after - before) / 2)
        if abs(self.offset) > WARN_OFFSET and not self._warned:
            self._warned = True
            logger.warning(
                "this host's clock is %.1f s %s the database's; the worker goes by the "
                "database's clock (fix the host's time sync)",
                abs(self.offset.total_seconds()),
                "behind" if self.offset > timedelta(0) else "ahead of",
            )

    def __call__(self) -> datetime:
        return timezone.now() + self.offset
