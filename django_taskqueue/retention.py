"""Nothing grows without bound: the failure log and finished framework results are
pruned, and results that killed workers left READY or RUNNING are repaired.

Workers call :func:`start_pruning` every few minutes; ``manage.py taskqueue_prune`` does
the same on demand (with ``--dry-run``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connections, models, transaction
from django.utils import timezone

from .conf import conf
from .results import storable_text

logger = logging.getLogger("django_taskqueue")

# How often (at most) a worker process prunes and repairs, in seconds.
PRUNE_INTERVAL = 600.0
# Rows deleted or repaired per statement: a large backlog never holds long locks.
BATCH = 1000
# A READY or RUNNING result is repaired only once it has been left alone this long
# (and at least twice LOCK_TIMEOUT): a run that just started is not mistaken for one
# whose worker died.
REPAIR_GRACE = 3600.0

_pruned_at: dict[str, float] = {}
_prune_lock = threading.Lock()


@dataclass
class Pruned:
    failed: int = 0
    results: int = 0
    repaired: int = 0


def start_pruning(using: str) -> None:
    """Prune and repair now and then (at most every PRUNE_INTERVAL per database), in a
    thread of its own: a worker's coordinator must not wait for a backlog to go."""
    if _due(using):
        threading.Thread(
            target=_prune_logged, args=(using,), name="taskqueue-prune", daemon=True
        ).start()


def _due(using: str) -> bool:
    with _prune_lock:
        now = time.monotonic()
        last = _pruned_at.get(using)
        if last is not None and now - last < PRUNE_INTERVAL:
            return False
        _pruned_at[using] = now
        return True


def _prune_logged(using: str) -> None:
    try:
        done = prune(using)
    except Exception:
        logger.exception("could not prune the failure log and task results")
        return
    finally:
        connections[using].close()  # this thread's
    if done.failed or done.results or done.repaired:
        logger.info(
            "pruned %d failed task(s) and %d task result(s); repaired %d result(s)",
            done.failed,
            done.results,
            done.repaired,
        )


def prune(using: str, *, dry_run: bool = False) -> Pruned:
    """Everything :func:`start_pruning` does, at once, in this thread."""
    return Pruned(
        repaired=repair_results(using, dry_run=dry_run),
        failed=prune_failed(using, dry_run=dry_run),
        results=prune_results(using, dry_run=dry_run),
    )


def _delete_in_batches(queryset: models.QuerySet[models.Model], dry_run: bool) -> int:
    queryset = queryset.order_by()
    if dry_run:
        return queryset.count()
    model, using = queryset.model, queryset.db
    deleted = 0
    while ids := list(queryset.values_list("pk", flat=True)[:BATCH]):
        deleted += model._default_manager.using(using).filter(pk__in=ids).delete()[0]
    return deleted


def prune_failed(using: str, *, retention: float | None = None, dry_run: bool = False) -> int:
    """Delete failure-log rows older than ``retention`` seconds (default
    FAILED_TASK_RETENTION; None keeps them)."""
    from .models import FailedTask

    retention = conf.FAILED_TASK_RETENTION if retention is None else retention
    if retention is None:
        return 0
    before = timezone.now() - timedelta(seconds=retention)
    return _delete_in_batches(FailedTask.objects.using(using).filter(failed_at__lt=before), dry_run)


def prune_results(using: str, *, ttl: float | None = None, dry_run: bool = False) -> int:
    """Delete finished results older than ``ttl`` seconds (default RESULT_TTL)."""
    from .models import TaskResultRecord

    ttl = conf.RESULT_TTL if ttl is None else ttl
    if ttl is None:
        return 0
    before = timezone.now() - timedelta(seconds=ttl)
    return _delete_in_batches(TaskResultRecord.objects.using(using).prunable(before), dry_run)


def repair_results(using: str, *, dry_run: bool = False, now: datetime | None = None) -> int:
    """Results a killed worker left behind: RUNNING for a task back in the queue becomes
    READY; READY or RUNNING for a task no longer queued becomes FAILED (with the failure
    log's error when it has one). Returns how many were (or would be) repaired."""
    from .models import FailedTask, ResultStatus, Task, TaskResultRecord

    now = now or timezone.now()
    grace = max(REPAIR_GRACE, 2 * conf.LOCK_TIMEOUT)
    left = _left_alone(now - timedelta(seconds=grace))
    records = TaskResultRecord.objects.using(using)
    queued = Task.objects.using(using).filter(pk=models.OuterRef("pk"))
    waiting = records.filter(left, status=ResultStatus.RUNNING).filter(
        models.Exists(queued.filter(locked_until__isnull=True))
    )
    orphans = records.filter(left, status__in=[ResultStatus.READY, ResultStatus.RUNNING]).exclude(
        models.Exists(queued)
    )
    if dry_run:
        return waiting.count() + orphans.count()
    repaired = waiting.update(status=ResultStatus.READY)
    while batch := list(orphans.order_by()[:BATCH]):
        with transaction.atomic(using=using):
            failures = {
                failure.task_id: failure
                for failure in FailedTask.objects.using(using)
                .filter(task_id__in=[record.pk for record in batch])
                .order_by("failed_at")
            }
            for record in batch:
                failure = failures.get(record.pk)
                if failure is not None:
                    error, finished = failure.error, failure.failed_at
                else:
                    error = "the task left the queue (cancelled or deleted) before it finished"
                    finished = now
                record.status = ResultStatus.FAILED
                record.finished_at = finished
                record.errors = [
                    *record.errors,
                    {
                        "exception_class_path": "django_taskqueue.exceptions.TaskQueueError",
                        "traceback": storable_text(error),
                    },
                ]
                record.save(using=using, update_fields=["status", "finished_at", "errors"])
        repaired += len(batch)
    return repaired


def _left_alone(before: datetime) -> models.Q:
    """Results nobody touched since ``before``."""
    return models.Q(last_attempted_at__lt=before) | models.Q(
        last_attempted_at__isnull=True, enqueued_at__lt=before
    )
