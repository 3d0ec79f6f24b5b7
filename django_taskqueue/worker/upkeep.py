"""The coordinator's upkeep between claims: heartbeats, recovery of dead workers' tasks,
the database clock, replacement of dead executor threads and time limits. A part of
:class:`~django_taskqueue.worker.coordinator.Worker`, kept apart for its length."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import replace
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
    from .clock import DatabaseClock
    from .logs import OutcomeLog
    from .presence import Presence
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
    _ack_due: float | None
    _database_clock: DatabaseClock | None
    poll_storage: bool
    poll_interval: float
    recover_interval: float
    outcome_log: OutcomeLog
    presence: Presence
    next_heartbeat: float
    next_recover: float
    next_schedule: float
    next_poll: float
    next_pause_check: float
    queues: list[str] | None
    _paused: frozenset[str]
    _all_paused: bool
    _wake: threading.Event

    def stop(self) -> None:
        raise NotImplementedError

    def _upkeep(self, now: float) -> None:
        """What is due of the heartbeat, recovery, schedules, polling and the record."""
        if now >= self.next_heartbeat:
            if self._database_clock is not None:
                self._database_clock.sync()
            self._replace_dead_executors()
            self._heartbeat()
            self.next_heartbeat = now + self.heartbeat_interval
        if now >= self.next_recover:
            self._recover()
            self.next_recover = now + self.recover_interval
        if self.scheduler and now >= self.next_schedule:
            self.next_schedule = now + self._run_schedules()
        if self.poll_storage and now >= self.next_poll:
            self._maybe_more = True
            self.next_poll = now + self.poll_interval
        if now >= self.presence.next_refresh:
            self.presence.refresh(self.clock())
        if now >= self.next_pause_check:
            self._read_pauses()
            self.next_pause_check = now + self.poll_interval

    def pauses_changed(self) -> None:
        """The listener heard that the paused queues changed: read them at once."""
        self.next_pause_check = 0.0
        self._wake.set()

    def _read_pauses(self) -> None:
        """Claim from no paused queue: read them (one small query a poll interval)."""
        paused = self.db.paused_queues()
        if paused == self._paused:
            return
        served = self.queues
        for queue in sorted(paused - self._paused):
            if not served or queue in served:
                logger.info("worker %s: queue %r is paused", self.lock_id, queue)
        for queue in sorted(self._paused - paused):
            if not served or queue in served:
                logger.info("worker %s: queue %r is resumed", self.lock_id, queue)
                self._maybe_more = True
        self._paused = paused
        if served:
            kept = tuple(q for q in served if q not in paused)
            self._all_paused = not kept
            self.claimant = replace(self.claimant, queues=kept or tuple(served))
        else:
            self.claimant = replace(self.claimant, paused=tuple(sorted(paused)))

    def _next_deadline(self) -> float:
        """When the loop must turn next even if nothing wakes it."""
        deadlines = [
            self.next_heartbeat,
            self.next_recover,
            self.presence.next_refresh,
            self.next_pause_check,
        ]
        if self.scheduler:
            deadlines.append(self.next_schedule)
        if self.poll_storage:
            deadlines.append(self.next_poll)
        if self._ack_due is not None:
            deadlines.append(self._ack_due)
        if (limit := self.limits.next_deadline()) is not None:
            deadlines.append(limit)
        if self.outcome_log.summary_due is not None:
            deadlines.append(self.outcome_log.summary_due)
        return min(deadlines)

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
            self.presence.timed_out(task, limit)
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
        self.db.prune_workers(self.clock())
        report = self.db.recover_stale(self.claimant.lock_timeout, self.clock())
        if report.retried:
            logger.warning(
                "recovered %d task(s) whose worker died; they will run again", report.retried
            )
        log_report(self.lock_id, report)
        if report.retried:
            self._maybe_more = True
