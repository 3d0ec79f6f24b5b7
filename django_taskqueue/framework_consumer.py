"""The consumer of :data:`~django_taskqueue.constants.FRAMEWORK_TASK`: runs a task of
Django's tasks framework in the worker and records its outcome.

Imported only when a framework task runs (see
:func:`django_taskqueue.apps.run_framework_task`): a process that never runs one does
not import the framework at all.
"""

from __future__ import annotations

import logging
import os
import traceback
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, transaction
from django.utils import timezone

from .backends import TaskQueueBackend
from .conf import conf
from .exceptions import InvalidTask
from .framework import (
    TaskContext,
    TaskResult,
    as_result,
    framework_signals,
    load_task,
    new_record,
    normalize_json,
    retry_policy,
    task_backends,
)
from .results import Error, Failure, Success, storable_text
from .validation import json_text

if TYPE_CHECKING:
    from .models import Task, TaskResultRecord

logger = logging.getLogger("django_taskqueue")


def worker_id(task: Task) -> str:
    """The framework's worker id of a run: our worker's lock id."""
    if task.lock_id is not None:
        return str(task.lock_id)
    # Run in-process (RUN_IMMEDIATE_PRIORITY): no worker claimed it.
    return f"immediate-{os.getpid()}"


def _backend_class(alias: str) -> type:
    try:
        return type(task_backends[alias])
    except Exception:
        return TaskQueueBackend


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


def _send(signal: Any, alias: str, result: TaskResult[..., Any]) -> None:
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
    except BaseException as exc:
        final = (
            task.retry_count >= task.retry_max or retry_policy(payload).gives_up(exc) is not None
        )
        error = {
            "exception_class_path": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "traceback": storable_text(traceback.format_exc()),
        }
        record.errors = [*record.errors, error]
        record.status = ResultStatus.FAILED if final else ResultStatus.READY
        record.finished_at = timezone.now() if final else None
        record.save(using=using, update_fields=["status", "errors", "finished_at"])
        if framework_task is not None:
            # Sent inside the except block: the framework's log receiver reads exc_info.
            finished = as_result(framework_task, record)
            _send(framework_signals.task_finished, record.backend, finished)
        return Error(exc, traceback=error["traceback"])
    try:
        record.return_value = normalize_json(value)
        json_text(record.return_value, "the return value")
    except (InvalidTask, TypeError, ValueError) as exc:
        # The run finished, but its value cannot be stored: FAILED, and not run again.
        return _unstorable(task, record, framework_task, exc, using)
    record.status = ResultStatus.SUCCESSFUL
    record.finished_at = timezone.now()
    try:
        with transaction.atomic(using=using):
            record.save(using=using, update_fields=["status", "return_value", "finished_at"])
    except DatabaseError as exc:
        return _unstorable(task, record, framework_task, exc, using)
    _send(framework_signals.task_finished, record.backend, as_result(framework_task, record))
    return Success()


def _unstorable(
    task: Task, record: TaskResultRecord, framework_task: Any, exc: Exception, using: str
) -> Failure:
    """Record FAILED for a run whose return value cannot be stored."""
    from .models import ResultStatus

    reason = f"the task returned a value that cannot be stored: {exc}"
    record.refresh_from_db(using=using)
    record.errors = [
        *record.errors,
        {
            "exception_class_path": f"{type(exc).__module__}.{type(exc).__qualname__}",
            "traceback": storable_text(reason),
        },
    ]
    record.status = ResultStatus.FAILED
    record.return_value = None
    record.finished_at = timezone.now()
    record.save(using=using, update_fields=["status", "errors", "return_value", "finished_at"])
    _send(framework_signals.task_finished, record.backend, as_result(framework_task, record))
    return Failure(reason)
