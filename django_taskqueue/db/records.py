"""The statements about workers and queue depth: worker records (written at start,
refreshed with the heartbeat, marked at a clean stop) and the due-task count the
throughput chart and ``taskqueue_status`` draw. Part of
:class:`~django_taskqueue.db.generic.GenericDatabase`, through the ORM on every
database: none of it is on the claim's hot path."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from ..models import WorkerRecord

# A clean stop's record stays this long (hidden), while the chart draws its history;
# a dead worker's record is shown as dead this long, then deleted.
STOPPED_KEPT = timedelta(hours=1)
DEAD_KEPT = timedelta(hours=24)


class WorkerRecords:
    alias: str

    def workers(self) -> QuerySet[WorkerRecord]:
        from ..models import WorkerRecord

        return WorkerRecord.objects.using(self.alias)

    def register_worker(self, record: WorkerRecord) -> None:
        """Store a starting worker's record."""
        record.save(using=self.alias, force_insert=True)

    def refresh_worker(self, record: WorkerRecord, fields: list[str]) -> bool:
        """Write ``fields`` of a live worker's record: one UPDATE. False if the row is
        gone (pruned while the worker was frozen): the caller stores it again."""
        values = {name: getattr(record, name) for name in fields}
        return bool(self.workers().filter(pk=record.pk).update(**values))

    def stop_worker(self, worker_id: uuid.UUID, now: datetime, keep: bool) -> None:
        """A clean stop: delete the record, or with ``keep`` (its history still
        counts in the chart) hide it from the list of workers until it is pruned."""
        records = self.workers().filter(pk=worker_id)
        if keep:
            records.update(stopped_at=now, last_seen=now, running=0)
        else:
            records.delete()

    def prune_workers(self, now: datetime) -> int:
        """Delete stopped workers' records after STOPPED_KEPT, dead ones' after DEAD_KEPT."""
        stopped = self.workers().filter(stopped_at__lt=now - STOPPED_KEPT)
        dead = self.workers().filter(stopped_at__isnull=True, expires_at__lt=now - DEAD_KEPT)
        return int(stopped.delete()[0]) + int(dead.delete()[0])

    def due_count(self, now: datetime, cap: int, queues: tuple[str, ...] = ()) -> tuple[int, bool]:
        """Unclaimed tasks due at ``now``, counted up to ``cap``: (count, whether it
        reached the cap). The limit keeps the cost bounded at any depth."""
        from ..models import Task

        due: Any = Task.objects.using(self.alias).due(now)
        if queues:
            due = due.filter(queue__in=queues)
        count = due.order_by()[: cap + 1].count()
        return min(count, cap), count > cap

    def oldest_due(self, now: datetime, queues: tuple[str, ...] = ()) -> datetime | None:
        """The start time of the longest-waiting due, unclaimed task: now minus it is
        the queue's lag."""
        from ..models import Task

        due: Any = Task.objects.using(self.alias).due(now)
        if queues:
            due = due.filter(queue__in=queues)
        oldest: datetime | None = (
            due.order_by("start_at").values_list("start_at", flat=True).first()
        )
        return oldest
