"""The queue's status on one database: tasks per queue and state, the lag, recent
failures and the workers. ``taskqueue_status``, ``taskqueue_health`` and the Prometheus
collector read it.

Every figure costs a bounded amount of work at any depth: tasks are counted per state
over at most ``limit`` rows each (a count that reached it is a lower bound, marked
capped), and where the database estimates (PostgreSQL), the total of a capped state is
its planner's estimate.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .constants import FRAMEWORK_TASK
from .models import FailedTask, Task, TaskState, WorkerRecord

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from .db import QueueDatabase

# Rows counted per state: beyond, counts are lower bounds. Reading them costs about
# 0.1 s on SQLite and MariaDB (docs/commands.md has the figures).
COUNT_LIMIT = 10_000
STATES = tuple(state.value for state in TaskState)
FAILED_WITHIN = timedelta(hours=1)


@dataclass(frozen=True)
class CountRow:
    """Tasks of one queue (and with ``by_name``, one task name) per state."""

    queue: str
    name: str | None
    counts: dict[str, int]
    estimated: bool  # True when any of the counts is an estimate or capped
    # The states whose count is a lower bound: more rows than the limit to count.
    capped: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Totals:
    """Tasks per state over every queue."""

    counts: dict[str, int]
    # States whose total is the database's estimate, and those that are lower bounds.
    estimated: frozenset[str] = frozenset()
    capped: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Status:
    """Everything ``taskqueue_status`` shows."""

    using: str
    now: datetime
    limit: int
    rows: list[CountRow]
    totals: Totals
    oldest_due: datetime | None
    failed_last_hour: int
    workers: list[WorkerRecord] = field(default_factory=list)
    # Paused queues: (queue, paused at, reason).
    paused: list[tuple[str, datetime, str]] = field(default_factory=list)

    @property
    def lag(self) -> timedelta | None:
        """How long the oldest due, unclaimed task has waited (None: none waits)."""
        return None if self.oldest_due is None else max(self.now - self.oldest_due, timedelta())

    @property
    def live_workers(self) -> list[WorkerRecord]:
        return [worker for worker in self.workers if worker.is_alive(self.now)]


def _db(using: str) -> QueueDatabase:
    from .db import queue_db

    return queue_db(using)


def _annotated(tasks: QuerySet[Task], by_name: bool) -> Any:
    if not by_name:
        return tasks
    from django.db.models import Case, CharField, F, When
    from django.db.models.fields.json import KT
    from django.db.models.functions import Coalesce

    # A framework task counts under its function's path, as the worker logs it.
    label = Case(
        When(name=FRAMEWORK_TASK, then=Coalesce(KT("arguments__path"), F("name"))),
        default=F("name"),
        output_field=CharField(),
    )
    return tasks.annotate(label=label)


def count_tasks(
    using: str, now: datetime, *, by_name: bool = False, limit: int = COUNT_LIMIT
) -> list[CountRow]:
    """Tasks per queue (and with ``by_name``, per task name) and state, sorted by
    queue and name.

    Each state is counted apart, through an index (ready and scheduled through
    taskqueue_task_ready_idx, running and stale through taskqueue_task_locked_idx),
    over at most ``limit`` rows: past it, that state's counts are lower bounds
    (``capped``) in every row, and a queue none of the rows read were in is missing."""
    db = _db(using)
    tasks = Task.objects.using(using)
    counts: dict[tuple[str, str | None], dict[str, int]] = {}
    capped: set[str] = set()
    fields = ["queue", "label"] if by_name else ["queue"]
    for state in STATES:
        in_state = _annotated(tasks.in_state(state, now), by_name)
        rows, over = db.count_groups(in_state, fields, limit)
        for row in rows:
            key = (row[0], row[1] if by_name else None)
            counts.setdefault(key, dict.fromkeys(STATES, 0))[state] = row[-1]
        if over:
            capped.add(state)
    return [
        CountRow(
            queue=queue,
            name=name,
            counts=counts[queue, name],
            estimated=bool(capped),
            capped=frozenset(capped),
        )
        for queue, name in sorted(counts, key=lambda key: (key[0], key[1] or ""))
    ]


def count_totals(using: str, now: datetime, rows: Iterable[CountRow]) -> Totals:
    """The states' totals over ``rows``. A capped state's total is the database's
    estimate where it has one (and that is higher), else a lower bound."""
    rows = list(rows)
    counts = {state: sum(row.counts[state] for row in rows) for state in STATES}
    capped: set[str] = set().union(*(row.capped for row in rows))
    estimated = set()
    db = _db(using)
    tasks = Task.objects.using(using)
    for state in sorted(capped):
        guess = db.estimated_count(tasks.in_state(state, now))
        if guess is not None and guess > counts[state]:
            counts[state] = guess
            estimated.add(state)
    return Totals(
        counts=counts, estimated=frozenset(estimated), capped=frozenset(capped - estimated)
    )


def workers(using: str, now: datetime) -> list[WorkerRecord]:
    """The listed workers: the live ones first, then the dead ones."""
    listed = WorkerRecord.objects.using(using).listed()
    return sorted(
        listed, key=lambda worker: (not worker.is_alive(now), worker.hostname, worker.started_at)
    )


def serves(worker: WorkerRecord, queue: str) -> bool:
    """Whether ``worker`` claims tasks of ``queue`` (a worker with no queues takes all)."""
    return not worker.queues or queue in worker.queues


def failed_since(using: str, since: datetime) -> int:
    return FailedTask.objects.using(using).filter(failed_at__gte=since).count()


def queue_status(using: str, *, by_name: bool = False, limit: int = COUNT_LIMIT) -> Status:
    """The queue's status on database ``using``, by the database's clock."""
    db = _db(using)
    now = db.database_now()
    rows = count_tasks(using, now, by_name=by_name, limit=limit)
    return Status(
        using=using,
        now=now,
        limit=limit,
        rows=rows,
        totals=count_totals(using, now, rows),
        oldest_due=db.oldest_due(now),
        failed_last_hour=failed_since(using, now - FAILED_WITHIN),
        workers=workers(using, now),
        paused=[(p.queue, p.paused_at, p.reason) for p in db.paused()],
    )


def check_health(
    using: str, min_workers: int, queues: tuple[str, ...] = (), max_lag: float | None = None
) -> tuple[bool, str]:
    """Whether at least ``min_workers`` live workers serve each of ``queues`` (any
    queue if none) and, with ``max_lag``, the oldest due task of those queues has
    waited at most that many seconds: (healthy, the reason in a line)."""
    db = _db(using)
    now = db.database_now()
    live = list(WorkerRecord.objects.using(using).alive(now))
    problems = []
    found = []
    for queue in queues or (None,):
        serving = sum(1 for worker in live if queue is None or serves(worker, queue))
        which = f"live worker(s) serving queue {queue!r}" if queue else "live worker(s)"
        found.append(f"{serving} {which}")
        if serving < min_workers:
            problems.append(f"{serving} {which}, fewer than {min_workers}")
    if max_lag is not None:
        oldest = db.oldest_due(now, queues)
        lag = max((now - oldest).total_seconds(), 0.0) if oldest else 0.0
        found.append(f"lag {lag:.1f} s")
        if lag > max_lag:
            problems.append(f"lag {lag:.1f} s, more than {max_lag:g} s")
    return (False, "; ".join(problems)) if problems else (True, ", ".join(found))
