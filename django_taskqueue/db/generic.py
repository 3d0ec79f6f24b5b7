"""The queue on any Django database with ``SELECT ... FOR UPDATE SKIP LOCKED``, through the ORM.

This is the reference implementation of :class:`~django_taskqueue.db.base.QueueDatabase`:
the per-database classes override its hot methods with faster statements and must
behave the same (the test suite runs the worker tests on this class too).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import IntegrityError, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import Now

from ..constants import NAME_MAX_LENGTH
from ..lifecycle import attempts, requeued_copy, retry_values
from ..models import FailedTask, ScheduleRecord, Task, TaskQuerySet, TaskState
from ..results import Result, storable_text
from ..uuids import uuid7
from .base import (
    Claimant,
    FinishReport,
    Outcomes,
    QueueDatabase,
    StateCounts,
    claim_order,
    mark_stored,
    without_repeated_signatures,
)
from .listing import COUNT_LIMIT

if TYPE_CHECKING:
    from ..schedules import Schedule

logger = logging.getLogger("django_taskqueue")


def state_conditions(now: datetime) -> dict[TaskState, Q]:
    """What ``TaskQuerySet.in_state()`` filters on, as conditions for one aggregate."""
    return {
        TaskState.SCHEDULED: Q(locked_until__isnull=True, start_at__gt=now),
        TaskState.READY: Q(locked_until__isnull=True, start_at__lte=now),
        TaskState.RUNNING: Q(locked_until__gte=now),
        TaskState.STALE: Q(locked_until__lt=now),
    }


class GenericDatabase(QueueDatabase):
    def check_support(self) -> str | None:
        if not self.connection.features.has_select_for_update_skip_locked:
            return (
                f"database {self.alias!r} ({self.connection.display_name}) has no "
                "SELECT ... FOR UPDATE SKIP LOCKED, which the queue claims tasks with"
            )
        return None

    def database_now(self) -> datetime:
        # Any table with a row will do: django_migrations has this app's migrations.
        recorded = MigrationRecorder(self.connection).migration_qs
        now: datetime = recorded.annotate(now=Now()).values_list("now", flat=True)[0]
        return now

    def tasks(self) -> TaskQuerySet:
        return Task.objects.using(self.alias)

    def ready(self, claimant: Claimant, now: datetime) -> TaskQuerySet:
        tasks = self.tasks().ready(now)
        if claimant.queues:
            tasks = tasks.filter(queue__in=claimant.queues)
        if claimant.paused:
            tasks = tasks.exclude(queue__in=claimant.paused)
        return tasks

    def mine(self, claimant: Claimant) -> TaskQuerySet:
        return self.tasks().filter(lock_id=claimant.lock_id)

    # Publishing -------------------------------------------------------------------

    def insert(self, tasks: Sequence[Task]) -> list[Task]:
        unique = without_repeated_signatures(tasks)
        if not unique:
            return []
        signed = [t.pk for t in unique if t.signature is not None]
        with transaction.atomic(using=self.alias, savepoint=False):
            if not signed or self.connection.features.supports_ignore_conflicts:
                self.tasks().bulk_create(unique, ignore_conflicts=bool(signed))
                if signed:
                    kept = set(self.tasks().filter(pk__in=signed).values_list("pk", flat=True))
                    unique = [t for t in unique if t.signature is None or t.pk in kept]
            else:
                unique = self._insert_one_by_one(unique)
        mark_stored(unique, self.alias)
        return unique

    def _insert_one_by_one(self, tasks: list[Task]) -> list[Task]:
        """Without insert-or-ignore: a savepoint per signed task lets a duplicate fail."""
        stored = []
        for task in tasks:
            try:
                with transaction.atomic(using=self.alias):
                    task.save(using=self.alias, force_insert=True)
            except IntegrityError:
                if task.signature is None:
                    raise
                continue
            stored.append(task)
        return stored

    def cancel(self, signature: str) -> int:
        return self.tasks().filter(signature=signature).delete()[0]

    # Claiming and holding ---------------------------------------------------------

    def claim(self, claimant: Claimant, limit: int, now: datetime) -> list[Task]:
        if limit <= 0:
            return []
        locked_until = now + claimant.lock_timeout
        with transaction.atomic(using=self.alias, savepoint=False):
            tasks = list(self.ready(claimant, now).select_for_update(skip_locked=True)[:limit])
            if tasks:
                self.tasks().filter(pk__in=[t.pk for t in tasks]).update(
                    lock_id=claimant.lock_id, locked_until=locked_until
                )
        for task in tasks:
            task.lock_id, task.locked_until = claimant.lock_id, locked_until
        return sorted(tasks, key=claim_order)

    def acknowledge_and_claim(
        self,
        claimant: Claimant,
        outcomes: Sequence[tuple[Task, Result]],
        limit: int,
        now: datetime,
    ) -> tuple[FinishReport | None, list[Task]]:
        if not outcomes:
            return None, self.claim(claimant, limit, now)
        with transaction.atomic(using=self.alias, savepoint=False):
            report = self.finish(claimant, outcomes, now)
            return report, self.claim(claimant, limit, now)

    def heartbeat(self, claimant: Claimant, ids: Iterable[uuid.UUID], now: datetime) -> int:
        return self.update_mine(claimant, ids, locked_until=now + claimant.lock_timeout)

    def release(self, claimant: Claimant, ids: Iterable[uuid.UUID]) -> int:
        return self.update_mine(claimant, ids, lock_id=None, locked_until=None)

    def update_mine(self, claimant: Claimant, ids: Iterable[uuid.UUID], **values: Any) -> int:
        ids = list(ids)
        if not ids:
            return 0
        return self.mine(claimant).filter(pk__in=ids).update(**values)

    # The admin ----------------------------------------------------------------------

    def count_states(
        self,
        queryset: QuerySet[Task],
        now: datetime,
        estimate_above: int,
        count_limit: int = COUNT_LIMIT,
    ) -> StateCounts:
        """Above ``estimate_above`` rows (where the database estimates), ready and
        scheduled tasks are estimates; claimed ones are few and counted exactly through
        taskqueue_task_locked_idx. Elsewhere, a queue of more than ``count_limit``
        tasks has each state counted up to that limit, through its index."""
        queryset = queryset.order_by()
        conditions = state_conditions(now)
        total = self.estimated_count(queryset)
        if total is not None and total > estimate_above:
            claimed = queryset.filter(locked_until__isnull=False)
            exact = [TaskState.RUNNING, TaskState.STALE]
            counts = self.count_each(claimed, {s: conditions[s] for s in exact})
            guessed = (TaskState.READY, TaskState.SCHEDULED)
            for state in guessed:
                counts[state] = self.estimated_count(queryset.filter(conditions[state])) or 0
            return StateCounts(counts=counts, total=total, estimated=frozenset(guessed))
        if self.count_up_to(queryset, count_limit) <= count_limit:
            counts = self.count_each(queryset, {s: conditions[s] for s in TaskState})
            return StateCounts(counts=counts, total=sum(counts.values()))
        counts, capped = {}, set()
        for state in TaskState:
            counted = self.count_up_to(queryset.filter(conditions[state]), count_limit)
            if counted > count_limit:
                capped.add(state)
            counts[state] = min(counted, count_limit)
        return StateCounts(counts=counts, total=sum(counts.values()), capped=frozenset(capped))

    def count_each(self, queryset: QuerySet[Task], conditions: dict[str, Q]) -> dict[str, int]:
        """Rows of ``queryset`` meeting each condition, in one aggregate query."""
        aggregate = queryset.aggregate(
            **{str(key): Count("pk", filter=q) for key, q in conditions.items()}
        )
        return {key: aggregate[str(key)] for key in conditions}

    # Finishing and recovering -----------------------------------------------------

    def delete_mine(self, claimant: Claimant, ids: list[uuid.UUID]) -> int:
        """Delete the finished tasks the claimant still holds; return how many."""
        return self.mine(claimant).filter(pk__in=ids).delete()[0]

    def finish(
        self, claimant: Claimant, outcomes: Sequence[tuple[Task, Result]], now: datetime
    ) -> FinishReport:
        report = FinishReport()
        sorted_ = Outcomes.sort(outcomes)
        mine = self.mine(claimant)
        with transaction.atomic(using=self.alias, savepoint=False):
            if sorted_.done:
                report.deleted = self.delete_mine(claimant, sorted_.done)
                report.lost += len(sorted_.done) - report.deleted
            for task, error in sorted_.retries:
                values = retry_values(task, error, now)
                if mine.filter(pk=task.pk).update(**values):
                    report.retried += 1
                    report.retry_at[task.pk] = values["start_at"]  # type: ignore[assignment]
                else:
                    report.lost += 1
            copies = {}
            for task, requeue in sorted_.requeues:
                if mine.filter(pk=task.pk).delete()[0]:
                    copies[task] = requeued_copy(task, requeue, now)
                else:
                    report.lost += 1
            stored = {copy.pk for copy in self.insert(list(copies.values()))}
            report.requeued = len(stored)
            for task, copy in copies.items():
                if copy.pk not in stored:
                    logger.warning(
                        "task %s (%s) returned Requeue, but its copy was dropped: a task "
                        "with signature %r is queued already",
                        task.pk,
                        task.name,
                        copy.signature,
                    )
            failed = []
            for task, message in sorted_.finals:
                if mine.filter(pk=task.pk).delete()[0]:
                    failed.append((task, message))
                else:
                    report.lost += 1
            self.log_failures(failed, now)
            report.failed.extend(failed)
        return report

    def fail_stored(
        self, claimant: Claimant, task: Task, error: str, now: datetime
    ) -> FinishReport:
        report = FinishReport()
        mine = self.mine(claimant).filter(pk=task.pk)
        with transaction.atomic(using=self.alias, savepoint=False):
            # The row as stored: what the run changed in memory is what was refused.
            stored = mine.select_for_update().first()
            if stored is None or not mine.delete()[0]:
                report.lost = 1
                return report
            failure = (stored, storable_text(error))
            self.log_failures([failure], now)
            report.failed.append(failure)
        return report

    def log_failures(self, failures: Sequence[tuple[Task, str]], now: datetime) -> None:
        if failures:
            FailedTask.objects.using(self.alias).bulk_create(
                [FailedTask.from_task(task, error, failed_at=now) for task, error in failures]
            )

    def recover_stale(self, lock_timeout: timedelta, now: datetime) -> FinishReport:
        """Each expiry counts as a failed attempt, so a task that keeps killing its
        worker ends in the failure log after retry_max expiries instead of looping."""
        report = FinishReport()
        stale = self.tasks().filter(locked_until__lt=now)
        message = (
            "the claim on this task expired before its run finished: the worker running "
            "it died, was killed, or lost its database connection for longer than "
            f"LOCK_TIMEOUT ({lock_timeout.total_seconds():g}s)"
        )
        # Exhausted tasks: take them over under a fresh lock id, then move them.
        recovery = uuid7()
        taken = stale.filter(retry_count__gte=F("retry_max")).update(
            lock_id=recovery, locked_until=now + lock_timeout
        )
        if taken:
            with transaction.atomic(using=self.alias, savepoint=False):
                failed = []
                for task in self.tasks().filter(lock_id=recovery):
                    if self.tasks().filter(pk=task.pk, lock_id=recovery).delete()[0]:
                        error = (
                            f"gave up after {attempts(task.retry_count + 1)} "
                            f"(retry_max={task.retry_max}): {message}"
                        )
                        failed.append((task, error))
                self.log_failures(failed, now)
                report.failed.extend(failed)
        report.retried = stale.filter(retry_count__lt=F("retry_max")).update(
            lock_id=None,
            locked_until=None,
            retry_count=F("retry_count") + 1,
            error=message,
        )
        return report

    # Periodic tasks: a few statements per tick, so the ORM serves every database.

    def schedules(self) -> QuerySet[ScheduleRecord]:
        return ScheduleRecord.objects.using(self.alias)

    def schedule_rows(self, names: Iterable[str]) -> dict[str, ScheduleRecord]:
        return {row.name: row for row in self.schedules().filter(name__in=list(names))}

    def register_schedules(self, schedules: Sequence[Schedule], now: datetime) -> None:
        rows = self.schedule_rows(s.name for s in schedules)
        for schedule in schedules:
            definition = {
                "task": schedule.task_label[:NAME_MAX_LENGTH],
                "expression": schedule.expression,
                "time_zone": schedule.zone_name,
            }
            row = rows.get(schedule.name)
            if row is None:
                # Two workers starting at once: the second one's row is not inserted.
                self.schedules().bulk_create(
                    [
                        ScheduleRecord(
                            name=schedule.name, last_tick=now, updated_at=now, **definition
                        )
                    ],
                    ignore_conflicts=True,
                )
            elif any(getattr(row, key) != value for key, value in definition.items()):
                values: dict[str, Any] = {**definition, "updated_at": now}
                if (row.expression, row.time_zone) != (schedule.expression, schedule.zone_name):
                    # New timing: its ticks start now, and last_tick never moves back.
                    values["last_tick"] = max(row.last_tick, now)
                self.schedules().filter(pk=row.pk).update(**values)

    def fire_tick(
        self, name: str, tick: datetime, now: datetime, enqueue: Callable[[], uuid.UUID | None]
    ) -> bool:
        with transaction.atomic(using=self.alias):
            won = (
                self.schedules()
                .filter(name=name, enabled=True, last_tick__lt=tick)
                .update(last_tick=tick, last_fired_at=now)
            )
            if won:
                task_id = enqueue()
                if task_id is not None:
                    self.schedules().filter(name=name).update(last_task_id=task_id)
        return bool(won)

    def skip_ticks(self, name: str, through: datetime) -> None:
        self.schedules().filter(name=name, last_tick__lt=through).update(last_tick=through)
