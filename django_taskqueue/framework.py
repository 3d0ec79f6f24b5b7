"""Django's tasks framework on the queue: the compatibility imports, the consumer that
runs framework tasks in the worker, and how their results are recorded and read back.

The framework is ``django.tasks`` on Django 6.0+, and the ``django-tasks`` backport
package on Django 5.2. A framework task is stored as one of our tasks named
:data:`FRAMEWORK_TASK`, whose arguments say which function to call with what; its
result lives in :class:`~django_taskqueue.models.TaskResultRecord`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import django
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from .apps import FRAMEWORK_TASK
from .conf import conf
from .results import Error, Success

if django.VERSION >= (6, 0):
    from django.tasks import signals as framework_signals
    from django.tasks import task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task as FrameworkTask
    from django.tasks.base import TaskContext, TaskError, TaskResult, TaskResultStatus
    from django.tasks.exceptions import InvalidTask as InvalidFrameworkTask
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.utils.json import normalize_json
else:
    try:
        from django_tasks import signals as framework_signals
        from django_tasks import task_backends
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import Task as FrameworkTask
        from django_tasks.base import TaskContext, TaskError, TaskResult, TaskResultStatus
        from django_tasks.exceptions import InvalidTaskError as InvalidFrameworkTask
        from django_tasks.exceptions import TaskResultDoesNotExist
        from django_tasks.utils import normalize_json
    except ImportError as exc:
        raise ImportError(
            "Django's tasks framework is part of Django 6.0 and later; on Django "
            f"{django.get_version()} install its backport: pip install django-tasks"
        ) from exc

if TYPE_CHECKING:
    from .models import Task, TaskResultRecord

logger = logging.getLogger("django_taskqueue")

# How often (at most) a worker process deletes expired results, in seconds.
PRUNE_INTERVAL = 600.0

__all__ = [
    "FRAMEWORK_TASK",
    "BaseTaskBackend",
    "FrameworkTask",
    "InvalidFrameworkTask",
    "QueueTask",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "normalize_json",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueTask(FrameworkTask):  # type: ignore[misc]
    """The framework's Task with one more option: ``retry_max``.

    ``@task(retry_max=3)`` or ``.using(retry_max=3)`` overrides the backend's
    ``OPTIONS["RETRY_MAX"]`` for this task.
    """

    retry_max: int | None = None

    def using(self, *, retry_max: int | None = None, **changes: Any) -> QueueTask:
        # Not super(): slotted dataclasses lose the __class__ cell it needs.
        task = FrameworkTask.using(self, **changes)
        if retry_max is not None:
            task = replace(task, retry_max=retry_max)
        return task  # type: ignore[no-any-return]


def to_queue_priority(priority: int) -> int:
    """Map the framework's priority (-100..100, higher first) onto ours (lower first).

    The framework's default, 0, becomes ``DEFAULT_PRIORITY``, so framework tasks and
    tasks from :func:`~django_taskqueue.enqueue` of default priority take turns.
    """
    from .models import PRIORITY_MAX, PRIORITY_MIN

    return max(PRIORITY_MIN, min(PRIORITY_MAX, conf.DEFAULT_PRIORITY - priority))


def worker_id(task: Task) -> str:
    """The framework's worker id of a run: our worker's lock id."""
    if task.lock_id is not None:
        return str(task.lock_id)
    # Run in-process (RUN_IMMEDIATE_PRIORITY): no worker claimed it.
    return f"immediate-{os.getpid()}"


def load_task(payload: dict[str, Any]) -> FrameworkTask:
    """The framework Task a stored task calls, with the options it was enqueued with."""
    path = payload["path"]
    target = import_string(path)
    if not isinstance(target, FrameworkTask):
        raise TypeError(f"{path} is not a task: decorate the function with @task")
    changes: dict[str, Any] = {
        "priority": payload.get("priority", target.priority),
        "queue_name": payload.get("queue_name", target.queue_name),
        "backend": payload.get("backend", target.backend),
    }
    if payload.get("run_after"):
        changes["run_after"] = parse_datetime(payload["run_after"])
    if isinstance(target, QueueTask) and payload.get("retry_max") is not None:
        changes["retry_max"] = payload["retry_max"]
    return replace(target, **changes)


def _backend_class(alias: str) -> type:
    from .backends import TaskQueueBackend

    try:
        return type(task_backends[alias])
    except Exception:
        return TaskQueueBackend


def as_result(
    task: FrameworkTask, record: TaskResultRecord, status: str | None = None
) -> TaskResult:
    """The framework's TaskResult for ``record``."""
    result = TaskResult(
        task=task,
        id=str(record.pk),
        status=TaskResultStatus(status or record.status),
        enqueued_at=record.enqueued_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        last_attempted_at=record.last_attempted_at,
        args=record.args,
        kwargs=record.kwargs,
        backend=record.backend,
        errors=[TaskError(**error) for error in record.errors],
        worker_ids=list(record.worker_ids),
    )
    object.__setattr__(result, "_return_value", record.return_value)
    return result


def new_record(task_id: uuid.UUID, payload: dict[str, Any], **values: Any) -> TaskResultRecord:
    """An unsaved record for a task, from its stored arguments."""
    from .models import TaskResultRecord

    run_after = payload.get("run_after")
    return TaskResultRecord(
        id=task_id,
        task_path=payload["path"],
        backend=payload.get("backend", "default"),
        priority=payload.get("priority", 0),
        args=payload.get("args", []),
        kwargs=payload.get("kwargs", {}),
        run_after=parse_datetime(run_after) if run_after else None,
        **values,
    )


def _start(task: Task, payload: dict[str, Any], now: datetime, using: str) -> TaskResultRecord:
    """Record that a run starts: RUNNING, one more worker id."""
    from .models import ResultStatus, TaskResultRecord

    record = TaskResultRecord.objects.using(using).filter(pk=task.pk).first()
    if record is None:
        record = new_record(
            task.pk,
            payload,
            queue=task.queue,
            status=ResultStatus.RUNNING,
            enqueued_at=task.created_at,
            started_at=now,
            last_attempted_at=now,
            worker_ids=[worker_id(task)],
        )
        record.save(using=using, force_insert=True)
        return record
    # A later attempt, or a run again after a retry from the failure log.
    record.status = ResultStatus.RUNNING
    record.started_at = record.started_at or now
    record.last_attempted_at = now
    record.finished_at = None
    record.return_value = None
    record.worker_ids = [*record.worker_ids, worker_id(task)]
    record.save(
        using=using,
        update_fields=[
            "status",
            "started_at",
            "last_attempted_at",
            "finished_at",
            "return_value",
            "worker_ids",
        ],
    )
    return record


def _send(signal: Any, alias: str, result: TaskResult) -> None:
    for receiver, response in signal.send_robust(sender=_backend_class(alias), task_result=result):
        if isinstance(response, Exception):
            logger.error("framework signal receiver %r raised: %r", receiver, response)


def run_framework_task(payload: dict[str, Any], task: Task) -> Any:
    """The consumer of :data:`FRAMEWORK_TASK`: call the framework task, record the outcome.

    An exception is recorded in the result's ``errors`` and returned as
    :class:`~django_taskqueue.results.Error`, so the queue's retries and failure log
    apply; the result is FAILED once no retry is left, READY again otherwise.
    """
    from .models import ResultStatus

    using = task._state.db or conf.DATABASE
    record = _start(task, payload, timezone.now(), using)
    final = task.retry_count >= task.retry_max
    framework_task = None
    result = None
    try:
        framework_task = load_task(payload)
        result = as_result(framework_task, record)
        _send(framework_signals.task_started, record.backend, result)
        args, kwargs = record.args, record.kwargs
        if framework_task.takes_context:
            value = framework_task.call(TaskContext(task_result=result), *args, **kwargs)
        else:
            value = framework_task.call(*args, **kwargs)
        record.return_value = normalize_json(value)
    except Exception as exc:
        error = {
            "exception_class_path": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "traceback": traceback.format_exc(),
        }
        record.errors = [*record.errors, error]
        record.status = ResultStatus.FAILED if final else ResultStatus.READY
        record.finished_at = timezone.now() if final else None
        record.save(using=using, update_fields=["status", "errors", "finished_at"])
        if framework_task is not None:
            # Sent inside the except block: the framework's log receiver reads exc_info.
            finished = as_result(framework_task, record)
            _send(framework_signals.task_finished, record.backend, finished)
        if final:
            _maybe_prune(using)
        return Error(exc, traceback=error["traceback"])
    record.status = ResultStatus.SUCCESSFUL
    record.finished_at = timezone.now()
    record.save(using=using, update_fields=["status", "return_value", "finished_at"])
    _send(framework_signals.task_finished, record.backend, as_result(framework_task, record))
    _maybe_prune(using)
    return Success()


_pruned_at: dict[str, float] = {}
_prune_lock = threading.Lock()


def _maybe_prune(using: str) -> None:
    """Delete expired results now and then, so a worker keeps the table small."""
    if conf.RESULT_TTL is None:
        return
    with _prune_lock:
        now = time.monotonic()
        last = _pruned_at.get(using)
        if last is not None and now - last < PRUNE_INTERVAL:
            return
        _pruned_at[using] = now
    try:
        deleted = prune_results(using)
    except Exception:
        logger.exception("could not prune expired task results")
        return
    if deleted:
        logger.info("pruned %d task result(s) older than RESULT_TTL", deleted)


def prune_results(using: str, *, ttl: float | None = None, dry_run: bool = False) -> int:
    """Delete finished results older than ``ttl`` seconds (default RESULT_TTL)."""
    from datetime import timedelta

    from .models import TaskResultRecord

    ttl = conf.RESULT_TTL if ttl is None else ttl
    if ttl is None:
        return 0
    before = timezone.now() - timedelta(seconds=ttl)
    prunable = TaskResultRecord.objects.using(using).prunable(before).order_by()
    if dry_run:
        return prunable.count()
    deleted = 0
    # In batches, so pruning a large backlog never holds long locks.
    while ids := list(prunable.values_list("pk", flat=True)[:1000]):
        deleted += TaskResultRecord.objects.using(using).filter(pk__in=ids).delete()[0]
    return deleted
