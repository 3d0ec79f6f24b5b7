"""A backend for Django's tasks framework that runs tasks on this queue.

    TASKS = {
        "default": {
            "BACKEND": "django_taskqueue.backends.TaskQueueBackend",
            "QUEUES": ["default", "emails"],
            "OPTIONS": {"RETRY_MAX": 3},
        }
    }

``OPTIONS``: ``RETRY_MAX`` (default ``TASKQUEUE["DEFAULT_RETRY_MAX"]``),
``DATABASE`` (default ``TASKQUEUE["DATABASE"]``), and the retry policy of its tasks:
``RETRY_BACKOFF`` and ``RETRY_JITTER`` (default: the ``TASKQUEUE`` settings),
``GIVE_UP_ON`` and ``RETRY_ON`` (dotted paths of exception classes).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.checks import CheckMessage
from django.utils import timezone

from .conf import conf
from .constants import FRAMEWORK_TASK
from .exceptions import InvalidTask
from .framework import (
    BaseTaskBackend,
    FrameworkTask,
    InvalidFrameworkTask,
    QueueTask,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    as_result,
    framework_signals,
    load_task,
    new_record,
    normalize_json,
    to_queue_priority,
)
from .registry import check_timeout
from .retries import RetryPolicy

if TYPE_CHECKING:
    from .framework import P, R


class TaskQueueBackend(BaseTaskBackend):
    """Stores framework tasks in the queue table; ``taskqueue_worker`` runs them."""

    task_class = QueueTask

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    @property
    def retry_max(self) -> int:
        retry_max: int = self.options.get("RETRY_MAX", conf.DEFAULT_RETRY_MAX)
        return retry_max

    @property
    def database(self) -> str:
        database: str = self.options.get("DATABASE", conf.DATABASE)
        return database

    def validate_task(self, task: FrameworkTask[..., Any]) -> None:
        super().validate_task(task)
        retry_max = getattr(task, "retry_max", None)
        if retry_max is not None and (
            isinstance(retry_max, bool) or not isinstance(retry_max, int) or retry_max < 0
        ):
            raise InvalidFrameworkTask(f"retry_max must be an integer >= 0, not {retry_max!r}.")
        try:
            check_timeout(getattr(task, "timeout", None), task.module_path)
            RetryPolicy.build(
                task.module_path,
                backoff=getattr(task, "backoff", None),
                jitter=getattr(task, "jitter", None),
                give_up_on=getattr(task, "give_up_on", None) or (),
                retry_on=getattr(task, "retry_on", None),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidFrameworkTask(str(exc)) from None

    def enqueue(self, task: FrameworkTask[P, R], args: Any, kwargs: Any) -> TaskResult[P, R]:
        from .publishing import enqueue

        self.validate_task(task)
        # The framework's own rule: arguments are JSON (tuples become lists).
        args = normalize_json(list(args))
        kwargs = normalize_json(dict(kwargs))
        run_after = task.run_after
        if isinstance(run_after, timedelta):
            run_after = timezone.now() + run_after
        payload = {
            "path": task.module_path,
            "args": args,
            "kwargs": kwargs,
            "backend": self.alias,
            "priority": task.priority,
            "queue_name": task.queue_name,
            "run_after": run_after.isoformat() if run_after is not None else None,
        }
        retry_max = getattr(task, "retry_max", None)
        if retry_max is not None:
            payload["retry_max"] = retry_max
        timeout = getattr(task, "timeout", None)  # QueueTask's
        if timeout is not None:
            payload["timeout"] = timeout
        try:
            row = enqueue(
                FRAMEWORK_TASK,
                payload,
                priority=to_queue_priority(task.priority),
                retry_max=self.retry_max if retry_max is None else retry_max,
                queue=task.queue_name,
                start_time=run_after,
                using=self.database,
            )
        except InvalidTask as exc:
            raise InvalidFrameworkTask(str(exc)) from exc
        assert row is not None  # only signed tasks are ever dropped
        record = new_record(row.pk, payload, queue=row.queue, enqueued_at=row.created_at)
        result = as_result(task, record, TaskResultStatus.READY)
        framework_signals.task_enqueued.send(sender=type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[..., Any]:
        from .models import FailedTask, ResultStatus, Task, TaskResultRecord

        try:
            pk = uuid.UUID(str(result_id))
        except ValueError:
            raise TaskResultDoesNotExist(result_id) from None
        using = self.database
        row = (
            Task.objects.using(using)
            .filter(pk=pk, name=FRAMEWORK_TASK)
            .only("id", "arguments", "queue", "created_at", "lock_id", "locked_until")
            .first()
        )
        record = TaskResultRecord.objects.using(using).filter(pk=pk).first()
        if row is not None:
            if record is None:
                # Not started yet: the queue row is all there is.
                record = new_record(
                    row.pk, row.arguments, queue=row.queue, enqueued_at=row.created_at
                )
            now = timezone.now()
            claimed = row.locked_until is not None and row.locked_until >= now
            if not (claimed and record.status in (ResultStatus.SUCCESSFUL, ResultStatus.FAILED)):
                # A run that ended but is not acknowledged yet keeps its final status;
                # otherwise the queue row says whether it is running or waiting.
                record.status = ResultStatus.RUNNING if claimed else ResultStatus.READY
        elif record is None or record.status not in (ResultStatus.SUCCESSFUL, ResultStatus.FAILED):
            # Left the queue without a recorded outcome: it failed without running to
            # the end (its worker died), or was cancelled.
            failure = (
                FailedTask.objects.using(using)
                .filter(task_id=pk, name=FRAMEWORK_TASK)
                .order_by("-failed_at")
                .first()
            )
            if record is None:
                if failure is None:
                    raise TaskResultDoesNotExist(result_id)
                record = new_record(
                    pk, failure.arguments, queue=failure.queue, enqueued_at=failure.created_at
                )
            record.status = ResultStatus.FAILED
            if failure is not None:
                record.finished_at = record.finished_at or failure.failed_at
                record.errors = [
                    *record.errors,
                    {
                        "exception_class_path": "django_taskqueue.exceptions.TaskQueueError",
                        "traceback": failure.error,
                    },
                ]
        try:
            task = load_task(
                {
                    "path": record.task_path,
                    "priority": record.priority,
                    "queue_name": record.queue,
                    "backend": record.backend,
                    "run_after": record.run_after.isoformat() if record.run_after else None,
                }
            )
        except (ImportError, TypeError) as exc:
            raise TaskResultDoesNotExist(
                f"{result_id}: its task {record.task_path} cannot be imported ({exc})"
            ) from exc
        return as_result(task, record)

    # django-stubs says list; the framework only iterates over what check() returns.
    def check(self, **kwargs: Any) -> Iterable[CheckMessage]:  # type: ignore[override]
        from .checks import check_backend

        yield from super().check(**kwargs)
        yield from check_backend(self.alias, self.options, self.queues)


__all__ = ["TaskQueueBackend"]
