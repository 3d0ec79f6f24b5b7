"""Pausing and resuming queues: the rows of ``PausedQueue``, and the wake-up that makes
workers read them again at once where the database can send one. Part of
:class:`~django_taskqueue.db.base.QueueDatabase`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from django.db import IntegrityError, transaction

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from ..models import PausedQueue


class QueueControl:
    alias: str

    def paused(self) -> QuerySet[PausedQueue]:
        from ..models import PausedQueue

        return PausedQueue.objects.using(self.alias)

    def paused_queues(self) -> frozenset[str]:
        """The queues paused now: the worker reads them once a poll interval."""
        return frozenset(self.paused().values_list("queue", flat=True))

    def pause(self, queue: str, reason: str, now: datetime) -> bool:
        """Pause ``queue``; False if it was paused already."""
        try:
            with transaction.atomic(using=self.alias):
                self.paused().create(queue=queue, reason=reason, paused_at=now)
        except IntegrityError:
            return False
        self.announce_pauses()
        return True

    def resume(self, queue: str) -> bool:
        """Resume ``queue``; False if it was not paused."""
        deleted = self.paused().filter(queue=queue).delete()[0]
        if deleted:
            self.announce_pauses()
        return bool(deleted)

    def announce_pauses(self) -> None:
        """Tell listening workers that the paused queues changed (PostgreSQL: NOTIFY,
        sent when the transaction commits). Elsewhere they see it at their next poll."""
