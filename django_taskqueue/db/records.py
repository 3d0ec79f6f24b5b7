"""The statements about workers and queue depth: worker records (written at start,
refreshed with the heartbeat, marked at a clean stop), the due-task count the
throughput chart draws, and the bounded counts and lag of ``taskqueue_status``. Part
of :class:`~django_taskqueue.db.generic.GenericDatabase`, through the ORM (and SQL any
of the databases runs as it is) on every database: none of it is on the claim's hot
path."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from ..models import Task, WorkerRecord

# A clean stop's record stays this long (hidden), while the chart draws its history;
# a dead worker's record is shown as dead this long, then deleted.
STOPPED_KEPT = timedelta(hours=1)
DEAD_KEPT = timedelta(hours=24)
# oldest_due probes this many priorities one by one, then sorts the rest.
PRIORITIES_SKIPPED = 32


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
        the queue's lag.

        A skip scan over taskqueue_task_ready_idx (priority, start_at): the oldest due
        task of each priority is the first of its range, two index probes per priority.
        ``ORDER BY start_at`` alone would sort every due task. Past PRIORITIES_SKIPPED
        priorities the sort is cheaper than the probes."""
        from ..models import Task

        unclaimed: Any = Task.objects.using(self.alias).filter(locked_until__isnull=True)
        due: Any = unclaimed.filter(start_at__lte=now)
        if queues:
            due = due.filter(queue__in=queues)
        oldest: datetime | None = None
        priority: int | None = None
        for _ in range(PRIORITIES_SKIPPED):
            after = unclaimed if priority is None else unclaimed.filter(priority__gt=priority)
            priority = after.order_by("priority").values_list("priority", flat=True).first()
            if priority is None:
                return oldest
            first = (
                due.filter(priority=priority)
                .order_by("start_at")
                .values_list("start_at", flat=True)
                .first()
            )
            if first is not None and (oldest is None or first < oldest):
                oldest = first
        rest = due.filter(priority__gt=priority) if priority is not None else due
        first = rest.order_by("start_at").values_list("start_at", flat=True).first()
        return first if oldest is None or (first is not None and first < oldest) else oldest

    def count_groups(
        self, tasks: QuerySet[Task], fields: Sequence[str], limit: int
    ) -> tuple[list[tuple[Any, ...]], bool]:
        """``tasks`` counted by ``fields`` (or annotations), over at most ``limit`` rows
        (and one): (rows of the field values and their count, whether there were more,
        making every count a lower bound). The limit keeps the cost bounded at any
        depth; no index has the queue, so counting a big table by queue exactly means
        reading all of it."""
        capped = tasks.order_by().values(*fields)[: limit + 1]
        inner, params = capped.query.sql_with_params()
        connection = connections[self.alias]
        columns = ", ".join(connection.ops.quote_name(name) for name in fields)
        sql = f"SELECT {columns}, COUNT(*) FROM ({inner}) counted GROUP BY {columns}"
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = [tuple(row) for row in cursor.fetchall()]
        return rows, sum(row[-1] for row in rows) > limit
