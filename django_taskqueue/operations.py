"""Operations on many tasks at once, shared by the admin and the management commands:
retry failed tasks (the failure log back into the queue) and cancel queued ones.

Both work in batches, each in a transaction of its own, so that a selection of any
size takes bounded memory and holds its locks briefly; an interrupted run keeps what
its finished batches did.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from .constants import FRAMEWORK_TASK, SIGNATURE_MAX_LENGTH
from .db import queue_db
from .models import TASK_FIELD_NAMES, FailedTask, ResultStatus, Task, TaskResultRecord
from .publishing import cancel
from .validation import check_text

# Failures retried, or tasks cancelled, per transaction.
BATCH_SIZE = 1000
# Most ids per IN (...) list: under every database's limit on a statement's parameters.
ID_BATCH = 500

# The error a cancelled framework task's result records.
CANCELLED = "cancelled: the task was removed from the queue before it finished"

T = TypeVar("T")


def _chunks(items: Sequence[T], size: int = ID_BATCH) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def named(names: Iterable[str]) -> Q:
    """Tasks (or failures) named one of ``names``, or tasks of Django's tasks framework
    whose function's dotted path is one of them."""
    names = list(names)
    return Q(name__in=names) | Q(name=FRAMEWORK_TASK, arguments__path__in=names)


# Retry ------------------------------------------------------------------------------


@dataclass
class RetryReport:
    """What a retry of failed tasks did (or, with ``dry_run``, would do)."""

    selected: int = 0  # failures the selection held
    tried: int = 0  # the newest failure of a task that was not queued: an insert was tried
    retried: int = 0  # back in the queue, their failure-log rows gone
    conflict: bool = False  # a retry of the same tasks at the same time stopped this one
    dry_run: bool = False

    @property
    def skipped_signature(self) -> int:
        """Left in the log: a task with the same signature is queued."""
        return self.tried - self.retried

    @property
    def skipped_queued(self) -> int:
        """Left in the log: the same task is queued (retried before, or failed twice)."""
        return self.selected - self.tried


def requeued(failure: FailedTask, now: datetime) -> Task:
    """The queued task a failure goes back to: the same task, with a fresh start."""
    values = {name: getattr(failure, name) for name in TASK_FIELD_NAMES}
    values.update(retry_count=0, start_at=now, lock_id=None, locked_until=None)
    return Task(id=failure.task_id, **values)


def retry_failures(
    queryset: QuerySet[FailedTask],
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
) -> RetryReport:
    """Put the failed tasks of ``queryset`` back in the queue, newest failures first,
    ``batch_size`` per transaction.

    Each becomes a task with its old id, name, arguments, priority, queue, signature
    and retry_max, retry_count 0 and due at ``now``, and its row leaves the failure
    log; a framework task's result is READY again. A failure whose signature is
    queued stays in the log, as does one whose task is queued again already (retried
    before, or failed twice: the newest failure of a task is the one retried).
    """
    now = now or timezone.now()
    using = queryset.db
    report = RetryReport()
    ordered = queryset.defer(None).order_by("-failed_at", "-pk")
    page = ordered
    while True:
        try:
            with transaction.atomic(using=using):
                failures = list(page.select_for_update()[:batch_size])
                if not failures:
                    return report
                tried, retried = _retry_batch(failures, using, now)
        except IntegrityError:
            # Another retry of the same tasks committed between our check and insert.
            report.conflict = True
            return report
        report.selected += len(failures)
        report.tried += tried
        report.retried += retried
        last = failures[-1]
        page = ordered.filter(
            Q(failed_at__lt=last.failed_at) | Q(failed_at=last.failed_at, pk__lt=last.pk)
        )


def _retry_batch(failures: list[FailedTask], using: str, now: datetime) -> tuple[int, int]:
    """Retry the newest failure of each task in ``failures`` whose task is not queued
    already (a later batch then skips that task's older failures)."""
    newest: dict[uuid.UUID, FailedTask] = {}
    for failure in failures:
        newest.setdefault(failure.task_id, failure)
    queued: set[uuid.UUID] = set()
    tasks = Task.objects.using(using)
    for ids in _chunks(list(newest)):
        queued.update(tasks.filter(pk__in=ids).values_list("pk", flat=True))
    candidates = [f for f in newest.values() if f.task_id not in queued]
    stored = {task.pk for task in queue_db(using).insert([requeued(f, now) for f in candidates])}
    retried = [f for f in candidates if f.task_id in stored]
    for chunk in _chunks(retried):
        FailedTask.objects.using(using).filter(pk__in=[f.pk for f in chunk]).delete()
    framework = [f.task_id for f in retried if f.name == FRAMEWORK_TASK]
    for ids in _chunks(framework):
        # What get_result() reports for a queued task, stored: the result waits again.
        TaskResultRecord.objects.using(using).filter(pk__in=ids).update(
            status=ResultStatus.READY, finished_at=None
        )
    return len(candidates), len(retried)


def count_retry(queryset: QuerySet[FailedTask]) -> RetryReport:
    """What :func:`retry_failures` would do now, counted without changing anything.

    Two failures of one task, or of one signature, in the selection count as two: the
    retry itself puts one back and skips the other.
    """
    using = queryset.db
    tasks = Task.objects.using(using)
    task_queued = Exists(tasks.filter(pk=OuterRef("task_id")))
    signature_queued = Exists(tasks.filter(signature=OuterRef("signature")))
    selected = queryset.count()
    if not selected:
        return RetryReport(dry_run=True)
    already = queryset.filter(task_queued).count()
    clash = (
        queryset.exclude(task_queued).filter(signature__isnull=False).filter(signature_queued)
    ).count()
    tried = selected - already
    return RetryReport(selected=selected, tried=tried, retried=tried - clash, dry_run=True)


# Cancel -----------------------------------------------------------------------------


@dataclass
class CancelReport:
    """What a cancel did (or, with ``dry_run``, would do)."""

    cancelled: int = 0
    running: int = 0  # claimed by a worker whose claim holds: left alone
    missing: int = 0  # ids or signatures of no queued task
    dry_run: bool = False

    def add(self, other: CancelReport) -> None:
        self.cancelled += other.cancelled
        self.running += other.running
        self.missing += other.missing


def _cancellable(now: datetime) -> Q:
    """Unclaimed, or claimed by a worker that is gone (stale), as the admin's cancel."""
    return Q(locked_until__isnull=True) | Q(locked_until__lt=now)


def cancel_ids(
    ids: Iterable[uuid.UUID],
    *,
    using: str,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
) -> CancelReport:
    """Delete the queued tasks with these ids, except those running now."""
    wanted = list(dict.fromkeys(ids))
    report = CancelReport(dry_run=dry_run)
    for chunk in _chunks(wanted, min(batch_size, ID_BATCH)):
        part = _cancel_all(
            Task.objects.using(using).filter(pk__in=chunk), using, dry_run, batch_size
        )
        part.missing = len(chunk) - part.cancelled - part.running
        report.add(part)
    return report


def cancel_matching(
    queryset: QuerySet[Task], *, dry_run: bool = False, batch_size: int = BATCH_SIZE
) -> CancelReport:
    """Delete the queued tasks of ``queryset``, except those running now."""
    return _cancel_all(queryset, queryset.db, dry_run, batch_size)


def cancel_signatures(
    signatures: Iterable[str], *, using: str, dry_run: bool = False
) -> CancelReport:
    """Cancel the queued task of each signature (:func:`~django_taskqueue.cancel`),
    except one running now. Every signature is checked before any is cancelled."""
    wanted = [check_text("signature", s, SIGNATURE_MAX_LENGTH) for s in dict.fromkeys(signatures)]
    now = queue_db(using).database_now()
    report = CancelReport(dry_run=dry_run)
    for signature in wanted:
        with transaction.atomic(using=using):
            # Locked: no worker claims it between this look and the delete.
            rows = list(
                Task.objects.using(using)
                .filter(signature=signature)
                .select_for_update()
                .values_list("pk", "name", "locked_until")
            )
            if not rows:
                report.missing += 1
            elif rows[0][2] is not None and rows[0][2] >= now:
                report.running += 1
            elif dry_run:
                report.cancelled += 1
            else:
                framework = _framework_rows(
                    using, [pk for pk, name, _ in rows if name == FRAMEWORK_TASK]
                )
                report.cancelled += cancel(signature, using=using)
                _fail_results(using, framework, now)
    return report


def _cancel_all(
    selection: QuerySet[Task], using: str, dry_run: bool, batch_size: int
) -> CancelReport:
    now = queue_db(using).database_now()
    running = selection.filter(locked_until__gte=now)
    if dry_run:
        return CancelReport(
            cancelled=selection.filter(_cancellable(now)).count(),
            running=running.count(),
            dry_run=True,
        )
    report = CancelReport()
    page = selection.filter(_cancellable(now)).order_by("pk")
    last: uuid.UUID | None = None
    while True:
        with transaction.atomic(using=using):
            batch = page if last is None else page.filter(pk__gt=last)
            rows = list(batch.select_for_update().values_list("pk", "name")[:batch_size])
            if not rows:
                break
            framework = _framework_rows(using, [pk for pk, name in rows if name == FRAMEWORK_TASK])
            for chunk in _chunks([pk for pk, _ in rows]):
                tasks = Task.objects.using(using).filter(pk__in=chunk)
                report.cancelled += tasks.filter(_cancellable(now)).delete()[0]
            _fail_results(using, framework, now)
        last = rows[-1][0]
    report.running = running.count()
    return report


def _framework_rows(using: str, ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    """What a result needs of framework tasks about to be cancelled."""
    rows: list[dict[str, Any]] = []
    for chunk in _chunks(ids):
        tasks = Task.objects.using(using).filter(pk__in=chunk)
        rows.extend(dict(row) for row in tasks.values("pk", "arguments", "queue", "created_at"))
    return rows


def _fail_results(using: str, rows: list[dict[str, Any]], now: datetime) -> None:
    """Record FAILED for cancelled framework tasks, with an error that says so: what
    get_result() reports of a task that left the queue unfinished, kept until
    RESULT_TTL prunes it. A task cancelled before it ever ran gets a result too."""
    if not rows:
        return
    # On a database without row locks a worker may have claimed one meanwhile.
    kept: set[uuid.UUID] = set()
    records = TaskResultRecord.objects.using(using)
    found: dict[uuid.UUID, TaskResultRecord] = {}
    for chunk in _chunks([row["pk"] for row in rows]):
        kept.update(Task.objects.using(using).filter(pk__in=chunk).values_list("pk", flat=True))
        found.update((r.pk, r) for r in records.filter(pk__in=chunk))
    gone = [row for row in rows if row["pk"] not in kept]
    error = {
        "exception_class_path": "django_taskqueue.exceptions.TaskQueueError",
        "traceback": CANCELLED,
    }
    new = []
    for row in gone:
        record = found.get(row["pk"])
        if record is None:
            record = _new_record(row)
            if record is None:
                continue
            new.append(record)
        record.status = ResultStatus.FAILED
        record.finished_at = now
        record.errors = [*record.errors, error]
    changed = [record for record in found.values() if record.pk not in kept]
    records.bulk_create(new, batch_size=ID_BATCH)
    records.bulk_update(changed, ["status", "finished_at", "errors"], batch_size=ID_BATCH)


def _new_record(row: dict[str, Any]) -> TaskResultRecord | None:
    payload = row["arguments"]
    if not isinstance(payload, dict) or "path" not in payload:
        return None
    try:
        from .framework import new_record
    except ImportError:  # the framework was uninstalled since the task was enqueued
        return None
    return new_record(row["pk"], payload, queue=row["queue"], enqueued_at=row["created_at"])
