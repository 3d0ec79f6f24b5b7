"""The coordinator's upkeep between claims: heartbeats, recovery of dead workers' tasks,
the database clock, replacement of dead executor threads and time limits. A part of
:class:`~django_taskqueue.worker.coordinator.Worker`, kept apart for its length."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING

from ..retention import start_pruning
from .executor import run_executor
from .limits import EXIT_TIME_LIMIT, TimeLimits
from .settling import log_report

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from ..db import Claimant, QueueDatabase
    from ..models import Task
    from .scheduler import Scheduler

logger = logging.getLogger("django_taskqueue")


class Upkeep:
    # Set by Worker.__init__.
    lock_id: uuid.UUID
    using: str
    db: QueueDatabase
    claimant: Claimant
    clock: Callable[[], datetime]
    heartbeat_interval: float
    exit_code: int
    limits: TimeLimits
    scheduler: Scheduler
    _threads: list[threading.Thread]
    _held: dict[uuid.UUID, Task]
    _running: dict[uuid.UUID, Task]
    _stopping: threading.Event
    _maybe_more: bool

    def stop(self) -> None:
        raise NotImplementedError

    def _start_executor(self, index: int) -> threading.Thread:
        thread = threading.Thread(
            target=run_executor, args=(self,), name=f"taskqueue-worker-{index}", daemon=True
        )
        thread.start()
        return thread

    def _replace_dead_executors(self) -> None:
        """An executor thread that died (its task got an Error outcome) is replaced."""
        for index, thread in enumerate(self._threads):
            if not thread.is_alive() and not self._stopping.is_set():
                logger.error("worker %s: %s died; starting another", self.lock_id, thread.name)
                self._threads[index] = self._start_executor(index)

    def _enforce_time_limits(self) -> None:
        for task, limit in self.limits.expire(time.monotonic()):
            self._running.pop(task.pk, None)
            logger.error(
                "task %s (%s) ran past its time limit of %gs; worker %s stops, lets its other "
                "runs finish, and exits with code %d (a thread cannot be stopped)",
                *(task.pk, task.name, limit, self.lock_id, EXIT_TIME_LIMIT),
            )
            self.exit_code = EXIT_TIME_LIMIT
            self.stop()

    def outage_delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` database errors in a row: doubling, but
        never longer than a heartbeat, so that the claims held do not expire."""
        return float(min(30.0, self.heartbeat_interval, 0.25 * 2.0**failures))

    def _heartbeat(self) -> None:
        held = list(self._held)
        if held:
            kept = self.db.heartbeat(self.claimant, held, self.clock())
            if kept < len(held):
                logger.warning(
                    "worker %s lost the claim on %d task(s)", self.lock_id, len(held) - kept
                )

    def _run_schedules(self) -> float:
        """Fire the periodic tasks that came due; return seconds until the next may."""
        now = self.clock()
        if self.scheduler.run_due(now):
            self._maybe_more = True  # what it enqueued may be due at once
        wait = self.scheduler.seconds_until_due(self.clock())
        # At least once a heartbeat: a schedule enabled again in the admin is seen.
        return min(self.heartbeat_interval, wait if wait is not None else 0.0)

    def _recover(self) -> None:
        start_pruning(self.using)  # the failure log and framework results, now and then
        report = self.db.recover_stale(self.claimant.lock_timeout, self.clock())
        if report.retried:
            logger.warning(
                "recovered %d task(s) whose worker died; they will run again", report.retried
            )
        log_report(self.lock_id, report)
        if report.retried:
            self._maybe_more = True
