"""The database layer's interface, and the values its methods take and return.

One :class:`QueueDatabase` per connection alias (see :func:`django_taskqueue.db.queue_db`)
runs every statement of the queue. Writes on a claimed task are guarded by the claim
(``lock_id``), so a worker whose claim expired and was taken over never touches the task
again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from ..results import Error, Requeue, Result
from .control import QueueControl
from .listing import COUNT_LIMIT, ListQueries
from .records import WorkerRecords

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from ..models import ScheduleRecord, Task
    from ..schedules import Schedule


@dataclass(frozen=True)
class Claimant:
    """Who claims tasks: one worker process, its claim length and its queues."""

    lock_id: uuid.UUID
    lock_timeout: timedelta
    queues: tuple[str, ...] = ()
    # Paused queues it must not claim from (when it serves every queue).
    paused: tuple[str, ...] = ()


@dataclass
class FinishReport:
    """What a batch of finished runs did to the queue."""

    deleted: int = 0
    retried: int = 0
    requeued: int = 0
    failed: list[tuple[Task, str]] = field(default_factory=list)
    lost: int = 0  # runs whose claim was gone: another worker owns the task now
    # When each retried task runs next, by id.
    retry_at: dict[uuid.UUID, datetime] = field(default_factory=dict)


@dataclass
class Outcomes:
    """A batch of run outcomes, sorted by what each does to its task."""

    done: list[uuid.UUID] = field(default_factory=list)
    retries: list[tuple[Task, Error]] = field(default_factory=list)
    requeues: list[tuple[Task, Requeue]] = field(default_factory=list)
    finals: list[tuple[Task, str]] = field(default_factory=list)

    @classmethod
    def sort(cls, outcomes: Iterable[tuple[Task, Result]]) -> Outcomes:
        from ..lifecycle import final_error

        sorted_ = cls()
        for task, result in outcomes:
            error = final_error(task, result)
            if error is not None:
                sorted_.finals.append((task, error))
            elif isinstance(result, Error):
                sorted_.retries.append((task, result))
            elif isinstance(result, Requeue):
                sorted_.requeues.append((task, result))
            else:
                sorted_.done.append(task.pk)
        return sorted_

    @property
    def only_done(self) -> bool:
        return not (self.retries or self.requeues or self.finals)


def claim_order(task: Task) -> tuple[int, datetime]:
    """The order claimed tasks run in: lowest priority number, then oldest start_at."""
    return (task.priority, task.start_at)


def without_repeated_signatures(tasks: Sequence[Task]) -> list[Task]:
    """``tasks`` without those whose signature an earlier one has (the first one wins)."""
    seen: set[str] = set()
    unique = []
    for task in tasks:
        if task.signature is not None:
            if task.signature in seen:
                continue
            seen.add(task.signature)
        unique.append(task)
    return unique


def mark_stored(tasks: Iterable[Task], using: str) -> None:
    """Mark instances as rows of database ``using``, as ``save()`` does."""
    for task in tasks:
        task._state.adding = False
        task._state.db = using


class QueueDatabase(WorkerRecords, QueueControl, ListQueries):
    """Every statement the queue runs, on one database alias.

    :class:`~django_taskqueue.db.generic.GenericDatabase` implements each method with
    the ORM; the per-database classes override the hot ones with faster statements.
    Methods that take a ``now`` use it for due times and claim expiry.
    """

    vendor = "generic"

    def __init__(self, alias: str) -> None:
        self.alias = alias

    @property
    def connection(self) -> BaseDatabaseWrapper:
        """This thread's connection to the queue's database."""
        return connections[self.alias]

    def check_support(self) -> str | None:
        """Why this database cannot hold the queue, or None if it can."""
        raise NotImplementedError

    # Publishing
    def insert(self, tasks: Sequence[Task]) -> list[Task]:
        """Store ``tasks``; return those stored (a task whose signature is queued
        already, or repeated earlier in ``tasks``, is dropped)."""
        raise NotImplementedError

    def cancel(self, signature: str) -> int:
        """Delete the queued task with ``signature``; return how many were deleted."""
        raise NotImplementedError

    # Claiming and holding
    def claim(self, claimant: Claimant, limit: int, now: datetime) -> list[Task]:
        """Claim up to ``limit`` due, unclaimed tasks, in :func:`claim_order`."""
        raise NotImplementedError

    def acknowledge_and_claim(
        self,
        claimant: Claimant,
        outcomes: Sequence[tuple[Task, Result]],
        limit: int,
        now: datetime,
    ) -> tuple[FinishReport | None, list[Task]]:
        """Apply finished runs and claim up to ``limit`` more, in one transaction."""
        raise NotImplementedError

    def heartbeat(self, claimant: Claimant, ids: Iterable[uuid.UUID], now: datetime) -> int:
        """Extend the claims on ``ids``; return how many the claimant still holds."""
        raise NotImplementedError

    def release(self, claimant: Claimant, ids: Iterable[uuid.UUID]) -> int:
        """Give claimed, unstarted tasks back to the queue at once."""
        raise NotImplementedError

    # Finishing and recovering
    def finish(
        self, claimant: Claimant, outcomes: Sequence[tuple[Task, Result]], now: datetime
    ) -> FinishReport:
        """Apply run outcomes in one transaction, each guarded by the claim."""
        raise NotImplementedError

    def fail_stored(
        self, claimant: Claimant, task: Task, error: str, now: datetime
    ) -> FinishReport:
        """Move the claimant's ``task`` to the failure log as it is stored, with
        ``error``: for a run whose outcome the database refused."""
        raise NotImplementedError

    def recover_stale(self, lock_timeout: timedelta, now: datetime) -> FinishReport:
        """Put back tasks whose claim expired; move the exhausted ones to the log."""
        raise NotImplementedError

    def log_failures(self, failures: Sequence[tuple[Task, str]], now: datetime) -> None:
        """Write failure-log rows for tasks that were never stored (run in-process)."""
        raise NotImplementedError

    # Periodic tasks
    def schedule_rows(self, names: Iterable[str]) -> dict[str, ScheduleRecord]:
        """The stored state of the schedules ``names``, by name (missing ones absent)."""
        raise NotImplementedError

    def register_schedules(self, schedules: Sequence[Schedule], now: datetime) -> None:
        """Store the schedules' definitions; a new one, or one whose timing changed,
        starts at ``now`` (ticks before it do not fire)."""
        raise NotImplementedError

    def fire_tick(
        self, name: str, tick: datetime, now: datetime, enqueue: Callable[[], uuid.UUID | None]
    ) -> bool:
        """Call ``enqueue`` if the enabled schedule ``name`` has not dealt with ``tick``
        yet, in the transaction that records it has: True if this call fired it."""
        raise NotImplementedError

    def skip_ticks(self, name: str, through: datetime) -> None:
        """Record that the ticks of ``name`` up to ``through`` will not fire."""
        raise NotImplementedError

    # The OPTIONS key of the driver's connect timeout (None: no network, no timeout).
    connect_timeout_option: str | None = None

    def database_now(self) -> datetime:
        """The database server's current time (aware): the clock claims, heartbeats and
        due times are decided on, whatever the hosts' clocks say."""
        raise NotImplementedError

    # Wake-up
    def can_listen(self) -> bool:
        """Whether workers can be woken at once when a task is enqueued."""
        return False

    def listen(self) -> Any:
        """A new connection of its own that receives the wake-up notifications."""
        raise NotImplementedError

    def notifications(self, listening: Any, timeout: float) -> Iterator[str | None]:
        """The payloads (comma-separated queues) received within ``timeout`` seconds;
        None for a change of the paused queues."""
        raise NotImplementedError

    # The admin (and db/listing.py)
    def count_states(
        self,
        queryset: QuerySet[Task],
        now: datetime,
        estimate_above: int,
        count_limit: int = COUNT_LIMIT,
    ) -> StateCounts:
        """Tasks per derived state in ``queryset``: estimated above ``estimate_above``
        where the database estimates, else each counted up to ``count_limit``."""
        raise NotImplementedError


@dataclass
class StateCounts:
    """Tasks per state (:class:`~django_taskqueue.models.TaskState`), and which are
    estimates."""

    counts: dict[str, int]
    total: int
    estimated: frozenset[str] = frozenset()
    # States with more tasks than the count limit: their count is that limit, and the
    # total is a lower bound.
    capped: frozenset[str] = frozenset()
