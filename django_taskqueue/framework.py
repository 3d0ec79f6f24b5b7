"""Django's tasks framework on the queue: the compatibility imports, the task class,
how results are recorded and read back, and how old ones are pruned. The consumer that
runs framework tasks in the worker is :mod:`~django_taskqueue.framework_consumer`.

The framework is ``django.tasks`` on Django 6.0+, and the ``django-tasks`` backport
package on Django 5.2. A framework task is stored as one of our tasks named
:data:`FRAMEWORK_TASK`, whose arguments say which function to call with what; its
result lives in :class:`~django_taskqueue.models.TaskResultRecord`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import django
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from .conf import conf
from .constants import FRAMEWORK_TASK

# mypy checks the first branch only (django-stubs types django.tasks); at runtime,
# TYPE_CHECKING is False and the Django version decides.
if TYPE_CHECKING or django.VERSION >= (6, 0):
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
    from typing import ParamSpec, TypeVar

    from .models import TaskResultRecord
    from .retries import RetryPolicy

    P = ParamSpec("P")
    R = TypeVar("R")

logger = logging.getLogger("django_taskqueue")


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
    "framework_signals",
    "normalize_json",
    "task_backends",
]


# django.tasks' Task is generic in django-stubs only, so the base stays unsubscripted.
@dataclass(frozen=True, slots=True, kw_only=True)
class QueueTask(FrameworkTask):  # type: ignore[type-arg]  # generic in stubs only
    """The framework's Task with the queue's options: ``retry_max``, ``timeout`` and
    the retry policy.

    ``@task(retry_max=3)`` or ``.using(retry_max=3)`` overrides the backend's
    ``OPTIONS["RETRY_MAX"]`` for this task; ``timeout`` (seconds) limits how long a run
    may take, as ``@consumer(..., timeout=...)`` does. ``@task(backoff=, jitter=,
    give_up_on=, retry_on=)`` override the backend's ``RETRY_BACKOFF``,
    ``RETRY_JITTER``, ``GIVE_UP_ON`` and ``RETRY_ON`` (see
    :class:`~django_taskqueue.retries.RetryPolicy`).
    """

    retry_max: int | None = None
    timeout: float | None = None
    backoff: Any = None
    jitter: float | None = None
    give_up_on: Any = None
    retry_on: Any = None

    def using(
        self, *, retry_max: int | None = None, timeout: float | None = None, **changes: Any
    ) -> QueueTask:
        # Not super(): slotted dataclasses lose the __class__ cell it needs.
        # using() copies with dataclasses.replace(), so the copy is a QueueTask too.
        task = cast(QueueTask, FrameworkTask.using(self, **changes))
        if retry_max is not None:
            task = replace(task, retry_max=retry_max)
        if timeout is not None:
            task = replace(task, timeout=timeout)
        return task


def retry_policy(payload: dict[str, Any]) -> RetryPolicy:
    """The retry policy of a stored framework task: its ``@task`` options, else its
    backend's ``OPTIONS``, else the settings."""
    from .retries import DEFAULT_POLICY, RetryPolicy

    try:
        target = import_string(payload["path"])
        options = task_backends[payload.get("backend", "default")].options
    except Exception:
        return DEFAULT_POLICY  # the run itself reports a task that cannot be loaded

    def pick(attribute: str, key: str, default: Any) -> Any:
        value = getattr(target, attribute, None)
        return value if value is not None else options.get(key, default)

    try:
        return RetryPolicy.build(
            payload["path"],
            backoff=pick("backoff", "RETRY_BACKOFF", None),
            jitter=pick("jitter", "RETRY_JITTER", None),
            give_up_on=pick("give_up_on", "GIVE_UP_ON", ()),
            retry_on=pick("retry_on", "RETRY_ON", None),
        )
    except (TypeError, ValueError):
        logger.exception("the retry policy of %s is wrong; using the default", payload["path"])
        return DEFAULT_POLICY


def to_queue_priority(priority: int) -> int:
    """Map the framework's priority (-100..100, higher first) onto ours (lower first).

    The framework's default, 0, becomes ``DEFAULT_PRIORITY``, so framework tasks and
    tasks from :func:`~django_taskqueue.enqueue` of default priority take turns.
    """
    from .constants import PRIORITY_MAX, PRIORITY_MIN

    return max(PRIORITY_MIN, min(PRIORITY_MAX, conf.DEFAULT_PRIORITY - priority))


def load_task(payload: dict[str, Any]) -> FrameworkTask[..., Any]:
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
    if isinstance(target, QueueTask):
        for option in ("retry_max", "timeout"):
            if payload.get(option) is not None:
                changes[option] = payload[option]
    return replace(target, **changes)


def as_result(
    task: FrameworkTask[P, R], record: TaskResultRecord, status: str | None = None
) -> TaskResult[P, R]:
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
