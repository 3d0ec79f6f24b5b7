"""A worker's record in the database and the counters it carries.

The record is written when the worker starts and refreshed every ``interval`` seconds
(one small UPDATE, never one per task) with what the worker did so far, how many tasks
run now, and a per-minute history of the last hour (succeeded, failed and due tasks)
that the admin's throughput chart draws. A clean stop takes the record out of the list.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import DatabaseError, InterfaceError

from ..metrics import count_outcomes, count_timed_out
from ..outcomes import outcomes
from ..signals import send_logged, task_retried, task_timed_out

if TYPE_CHECKING:
    from ..db import FinishReport
    from ..models import Task, WorkerRecord
    from ..results import Result
    from .coordinator import Worker

logger = logging.getLogger("django_taskqueue")

# The record is refreshed at least this often (and at each claim heartbeat).
RECORD_EVERY = 15.0
# A record not refreshed for this many intervals belongs to a dead worker.
MISSED_REFRESHES = 3
HISTORY_MINUTES = 60
# Due tasks are counted (once a minute, for the chart) up to this many.
DEPTH_CAP = 100_000
COUNTERS = ("succeeded", "failed", "retried", "timed_out")


def minute_of(now: datetime) -> int:
    return int(now.timestamp()) // 60 * 60


class Presence:
    """The worker's record, kept by its coordinator thread."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.interval = min(RECORD_EVERY, worker.heartbeat_interval)
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.history: dict[int, list[int]] = {}  # minute: [succeeded, failed]
        self.depths: dict[int, int] = {}  # minute: due tasks counted
        self.record: WorkerRecord | None = None
        self.next_refresh = 0.0
        self._sampled: int | None = None

    def _bucket(self, now: datetime) -> list[int]:
        minute = minute_of(now)
        bucket = self.history.get(minute)
        if bucket is None:
            bucket = self.history[minute] = [0, 0]
        return bucket

    # Counting (coordinator thread) -------------------------------------------------

    def stored(self, batch: list[tuple[Task, Result]], report: FinishReport) -> None:
        if not batch:
            return
        bucket = self._bucket(self.worker.clock())
        counts = self.counts
        for task, outcome in outcomes(batch, report):
            if outcome == "succeeded":
                counts["succeeded"] += 1
                bucket[0] += 1
            elif outcome == "failed":
                counts["failed"] += 1
                bucket[1] += 1
            elif outcome == "retried":
                counts["retried"] += 1
                send_logged(task_retried, task=task, retry_at=report.retry_at[task.pk])
        count_outcomes(batch, report)

    def timed_out(self, task: Task, limit: float) -> None:
        self.counts["timed_out"] += 1
        count_timed_out(task)
        send_logged(task_timed_out, task=task, limit=limit)

    # The record ----------------------------------------------------------------------

    def start(self, now: datetime) -> None:
        """Write the record of a starting worker."""
        from ..models import WorkerRecord
        from ..outcomes import package_version

        worker = self.worker
        self.record = WorkerRecord(
            id=worker.lock_id,
            hostname=socket.gethostname()[:255],
            pid=os.getpid(),
            queues=list(worker.queues or ()),
            threads=worker.workers,
            version=package_version()[:50],
            started_at=now,
        )
        self._fill(now)
        worker.db.register_worker(self.record)
        self.next_refresh = time.monotonic() + self.interval

    def _fill(self, now: datetime) -> None:
        record = self.record
        assert record is not None
        record.last_seen = now
        record.expires_at = now + timedelta(seconds=self.interval * MISSED_REFRESHES)
        for name, count in self.counts.items():
            setattr(record, name, count)
        record.running = len(self.worker._running)
        oldest = minute_of(now) - 60 * HISTORY_MINUTES
        for minute in [m for m in self.history if m <= oldest]:
            del self.history[minute]
            self.depths.pop(minute, None)
        # A minute's depth is null until the worker counted it.
        record.history = {
            str(minute): [*values, self.depths.get(minute)]
            for minute, values in self.history.items()
        }

    def refresh(self, now: datetime) -> None:
        """Refresh the record (and once a minute count the due tasks for the chart)."""
        if self.record is None:
            self.start(now)
            return
        minute = minute_of(now)
        if minute != self._sampled:
            depth, _ = self.worker.db.due_count(now, DEPTH_CAP, self.worker.claimant.queues)
            self._bucket(now)
            self.depths[minute] = depth
            self._sampled = minute
        self._fill(now)
        if not self.worker.db.refresh_worker(self.record, REFRESHED):
            # Pruned while this worker was frozen or cut off: it is alive after all.
            self.worker.db.register_worker(self.record)
        self.next_refresh = time.monotonic() + self.interval

    def stop(self, now: datetime) -> None:
        """A clean stop: the record leaves the list of workers."""
        if self.record is None:
            return
        keep = any(values[0] or values[1] for values in self.history.values())
        try:
            if keep:
                self._fill(now)
                self.worker.db.refresh_worker(self.record, REFRESHED)
            self.worker.db.stop_worker(self.record.pk, now, keep=keep)
        except (DatabaseError, InterfaceError) as exc:
            logger.warning("worker %s could not remove its record (%s)", self.worker.lock_id, exc)


REFRESHED = ["last_seen", "expires_at", *COUNTERS, "running", "history"]
