"""The worker's coordinator: the loop that feeds a pool of threads with claimed tasks.

One coordinator (the thread that calls :meth:`Worker.run`) owns every queue write of
the process: it claims batches, acknowledges finished runs in batches, extends claims
(heartbeat) and recovers tasks whose worker died. ``WORKER_COUNT`` executor threads only
run consumers and hand their outcomes back (:mod:`~django_taskqueue.worker.executor`).
On PostgreSQL a listener thread wakes the coordinator when a task is enqueued.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, InterfaceError

from ..conf import conf
from ..connections import close_quietly
from ..db import Claimant, FinishReport, queue_db
from ..models import Task
from ..periodic_tasks import declared
from ..registry import ConsumerRegistry, registry
from ..results import Result
from ..schedules import Schedule
from ..uuids import uuid7
from .clock import DatabaseClock
from .limits import TimeLimits
from .listener import Listener
from .liveness import Liveness
from .logs import OutcomeLog, plural
from .presence import Presence
from .scheduler import Scheduler
from .settling import database_answers, log_report, store_singly
from .stopping import StopSignals, shut_down
from .upkeep import Upkeep
from .watchdog import CONNECT_TIMEOUT, Watchdog

logger = logging.getLogger("django_taskqueue")

# Finished runs wait at most this long to be acknowledged when no claim carries them.
ACK_DELAY = 0.05


class Worker(Upkeep):
    """Runs tasks from the queue until stopped (or, in burst mode, until none is due).

    Every argument defaults to its ``TASKQUEUE`` setting. ``clock`` returns the aware
    "now" used for claims, retries and schedules: by default the database's (tests pass
    a controllable one). ``schedules`` are the periodic tasks it fires (default: every
    one declared, :func:`~django_taskqueue.schedules.declared`).
    """

    def __init__(
        self,
        *,
        workers: int | None = None,
        buffer_size: int | None = None,
        poll_interval: float | None = None,
        poll_storage: bool | None = None,
        lock_timeout: float | None = None,
        burst: bool = False,
        max_tasks: int | None = None,
        grace: float = 30.0,
        using: str | None = None,
        queues: Sequence[str] | None = None,
        listen: bool = True,
        clock: Callable[[], datetime] | None = None,
        consumers: ConsumerRegistry | None = None,
        schedules: Mapping[str, Schedule] | None = None,
    ) -> None:
        self.workers = workers or conf.WORKER_COUNT
        self.buffer_size = buffer_size or conf.BUFFER_SIZE
        self.poll_interval = poll_interval or conf.POLL_INTERVAL
        self.poll_storage = conf.POLL_STORAGE if poll_storage is None else poll_storage
        self.lock_timeout = lock_timeout or conf.LOCK_TIMEOUT
        self.burst = burst
        self.max_tasks = max_tasks
        self.grace = grace
        self.using = using or conf.DATABASE
        self.queues = list(queues) if queues else None
        self.consumers = consumers or registry
        self.lock_id: uuid.UUID = uuid7()
        self.db = queue_db(self.using)
        self.scheduler = Scheduler(self.db, declared() if schedules is None else schedules)
        # The database's clock unless a test gives one (DatabaseClock syncs at heartbeats).
        self._database_clock = DatabaseClock(self.db) if clock is None else None
        self.clock: Callable[[], datetime] = self._database_clock or cast(Any, clock)
        self.claimant = Claimant(
            lock_id=self.lock_id,
            lock_timeout=timedelta(seconds=self.lock_timeout),
            queues=tuple(self.queues or ()),
        )
        self.heartbeat_interval = max(0.2, self.lock_timeout / 4)
        self.recover_interval = max(0.5, min(self.lock_timeout / 2, 30.0))

        # The hot path between threads holds no lock of its own: SimpleQueue and deque
        # are thread-safe, and the executors touch ``_running`` one key at a time.
        # Claimed tasks run in claim order (each claim is sorted by priority).
        self._ready: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        # Claim again once no more than this many claimed tasks wait for a thread.
        self._low_water = self.buffer_size - max(1, self.buffer_size // 2)
        # The threads ran out of tasks while the last (full) claim was on its way:
        # claim the next batch as soon as one is handed over (see _claim_size).
        self._starved = False
        self._ack_due: float | None = None
        self._held: dict[uuid.UUID, Task] = {}  # claimed, not yet acknowledged
        self._running: dict[uuid.UUID, Task] = {}
        self._done: deque[tuple[Task, Result]] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._maybe_more = True
        self._paused: frozenset[str] = frozenset()
        self._all_paused = False
        self._threads: list[threading.Thread] = []
        self.limits = TimeLimits()
        self.outcome_log = OutcomeLog(self.lock_id)
        self.presence = Presence(self)
        self.liveness = Liveness()
        # The worker's own database calls get a deadline: a half-open connection never
        # answers (worker/watchdog.py).
        self.watchdog = Watchdog(limit=max(1.0, self.heartbeat_interval))
        self._listener: Listener | None = None
        self._listen = listen
        self._signals: StopSignals | None = None
        # Bumped when the database seems to have gone away; executor threads then
        # check their own connections before the next task.
        self._outages = 0
        self.claimed = 0
        self.processed = 0
        self.exit_code = 0
        self.started = threading.Event()

    # Public -----------------------------------------------------------------------

    def run(self) -> int:
        """Run until stopped; return the exit code (0 after a clean stop)."""
        problem = self.db.check_support()
        if problem is not None:
            raise ImproperlyConfigured(problem)
        logger.info(
            "worker %s starting: %d threads, buffer %d, database %r%s",
            self.lock_id,
            self.workers,
            self.buffer_size,
            self.using,
            f", queues {', '.join(self.queues)}" if self.queues else "",
        )
        option = self.db.connect_timeout_option
        if option is not None:
            # This process's new connections give up on an unreachable server.
            settings_dict = self.db.connection.settings_dict
            settings_dict.setdefault("OPTIONS", {}).setdefault(option, CONNECT_TIMEOUT)
        self._start_threads()
        try:
            self._loop()
        finally:
            shut_down(self)
        self.outcome_log.flush(time.monotonic(), force=True)
        self.liveness.stopping()
        self.presence.stop(self.clock())
        close_quietly(self.using)
        logger.info("worker %s stopped after %s", self.lock_id, plural(self.processed, "task"))
        return self.exit_code

    def stop(self) -> None:
        """Stop claiming, release unstarted tasks, let running ones finish (up to grace)."""
        self._stopping.set()
        self._wake.set()

    def notify(self) -> None:
        """Something may be due: claim at the next chance."""
        self._maybe_more = True
        self._wake.set()

    def install_signal_handlers(self, *, supervised: bool = False) -> None:
        """First SIGTERM/SIGINT stops gracefully; a second exits at once (code 1).
        Under a supervisor, see :class:`~django_taskqueue.worker.stopping.StopSignals`."""
        if threading.current_thread() is not threading.main_thread():
            return
        self._signals = StopSignals(self, supervised=supervised)
        self._signals.install()

    def restore_signal_handlers(self) -> None:
        if self._signals is not None:
            self._signals.restore()
            self._signals = None

    # Threads ----------------------------------------------------------------------

    def _start_threads(self) -> None:
        self.watchdog.start()
        self._threads = [self._start_executor(index) for index in range(self.workers)]
        if self._listen and self.db.can_listen():
            self._listener = Listener(
                self.using, self.notify, self.queues, self._outage, self.pauses_changed
            )
            self._listener.start()

    def _outage(self) -> None:
        self._outages += 1

    # The coordinator ---------------------------------------------------------------

    def _loop(self) -> None:
        failures = 0
        self.next_poll = self.next_heartbeat = self.next_recover = time.monotonic()
        self.next_schedule = self.next_pause_check = self.next_poll
        self.started.set()
        self.liveness.started()
        while not self._stopping.is_set():
            now = time.monotonic()
            self.liveness.turn()
            try:
                with self.watchdog.watch(self.db.connection):
                    self._upkeep(now)
                    claimed_full = self._cycle(now)
                self._enforce_time_limits()
                self.outcome_log.flush(now)
                if self._finished():
                    return
                failures = 0
            except (DatabaseError, InterfaceError) as exc:
                failures += 1
                delay = self.outage_delay(failures)
                logger.warning(
                    "database error in worker %s (%s); retrying in %.2fs", self.lock_id, exc, delay
                )
                close_quietly(self.using)
                self._outage()
                self._stopping.wait(delay)
                continue
            if claimed_full or self._claim_size():
                continue
            timeout = max(0.0, self._next_deadline() - time.monotonic())
            self._wake.wait(timeout)
            self._wake.clear()

    def _finished(self) -> bool:
        if self._held:
            return False
        if self.max_tasks is not None and self.claimed >= self.max_tasks:
            return True
        return self.burst and (not self._maybe_more or self._all_paused)

    def _claim_size(self) -> int:
        """How many tasks to claim now: 0 without room or reason to.

        Normally the buffer is topped up once no more than half of it waits for a
        thread, in batches rather than one task at a time, so at most ``buffer_size``
        claimed tasks wait. When the threads ran out of work while the last full claim
        was on its way (short tasks, a deep queue), waiting for the low-water mark
        leaves them idle for every round trip: the next batch is then claimed as soon
        as one is handed over, while its tasks run, so up to two batches wait.
        """
        if not self._maybe_more or self._all_paused:
            return 0
        waiting = self._ready.qsize()
        if self._starved and waiting <= self.buffer_size:
            size = self.buffer_size
        elif waiting > self._low_water:
            return 0
        else:
            size = self.buffer_size - waiting
        if self.max_tasks is not None:
            size = min(size, self.max_tasks - self.claimed)
        return max(0, size)

    def _take_done(self) -> list[tuple[Task, Result]]:
        batch = []
        while True:
            try:
                batch.append(self._done.popleft())
            except IndexError:
                return batch

    def _ack_now(self, claiming: bool, now: float) -> bool:
        """Whether to acknowledge the finished runs in this cycle.

        They ride along with a claim; otherwise they wait, up to ACK_DELAY, for more to
        finish, unless the worker has gone idle (nothing would join them) or enough
        wait already.
        """
        if not self._done:
            return False
        if claiming or self._stopping.is_set() or len(self._done) >= self.buffer_size:
            return True
        if not self._running and not self._ready.qsize():
            return True
        if self._ack_due is None:
            self._ack_due = now + ACK_DELAY
        return now >= self._ack_due

    def _cycle(self, now: float) -> bool:
        """Acknowledge finished runs and claim more, with one commit.

        Nothing changes in memory until it committed: on a database error the
        finished runs are kept for the next try. Returns True when the claim came back
        full (the queue may hold more).
        """
        size = self._claim_size()
        batch = self._take_done() if self._ack_now(size > 0, now) else []
        if not batch and not size:
            return False
        try:
            report, tasks = self.db.acknowledge_and_claim(self.claimant, batch, size, self.clock())
        except Exception as exc:
            if not batch or not database_answers(self.db, exc):
                self._done.extendleft(reversed(batch))
                raise
            self._store_singly(batch, exc)
            return False
        except BaseException:
            self._done.extendleft(reversed(batch))
            raise
        if report is not None:
            self._ack_due = None
            self._acknowledged(batch, report)
        if not size:
            return False
        full = len(tasks) == size
        # Measured before the new batch goes in: the threads took every task handed
        # to them before, and wait for more (for the very first claim, nobody knows).
        self._starved = full and self.claimed > 0 and not self._ready.qsize()
        for task in tasks:
            self._held[task.pk] = task
            self._ready.put(task)
        self.claimed += len(tasks)
        if tasks:
            logger.debug("worker %s claimed %d task(s)", self.lock_id, len(tasks))
        self._maybe_more = full
        return full and self._claim_size() > 0

    def _flush(self) -> None:
        """Acknowledge finished runs (without claiming: used while stopping)."""
        batch = self._take_done()
        if not batch:
            return
        try:
            report = self.db.finish(self.claimant, batch, self.clock())
        except Exception as exc:
            if not database_answers(self.db, exc):
                self._done.extendleft(reversed(batch))
                raise
            self._store_singly(batch, exc)
            return
        except BaseException:
            self._done.extendleft(reversed(batch))
            raise
        self._acknowledged(batch, report)

    def _store_singly(self, batch: list[tuple[Task, Result]], exc: Exception) -> None:
        logger.error(
            "worker %s could not store %d outcome(s) at once (%s: %s); storing them one by one",
            self.lock_id,
            len(batch),
            type(exc).__name__,
            exc,
        )
        stored = 0
        try:
            for outcome, report in store_singly(self.db, self.claimant, batch, self.clock):
                self._acknowledged([outcome], report)
                stored += 1
        except BaseException:
            self._done.extendleft(reversed(batch[stored:]))
            raise

    def _acknowledged(self, batch: list[tuple[Task, Result]], report: FinishReport) -> None:
        for task, _ in batch:
            self._held.pop(task.pk, None)
        self.processed += len(batch)
        log_report(self.lock_id, report)
        self.outcome_log.stored(batch, report, time.monotonic())
        self.presence.stored(batch, report)
        # A finished batch makes room: the queue may hold more.
        self._maybe_more = self._maybe_more or bool(batch)
