"""How a run's outcome changes a task: backoff, retry, failure and requeue values.

Pure functions over Task instances; the database layer applies them (guarded by the
claim), and the in-process pool to unsaved tasks. Each raises what cannot be stored
(arguments a consumer changed into something that is not JSON, a due time out of
range) before anything is written: the worker then fails that one task with the reason
(:meth:`~django_taskqueue.db.base.QueueDatabase.fail_stored`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .registry import registry
from .results import Error, Failure, Requeue, Result, storable_text
from .validation import check_arguments

if TYPE_CHECKING:
    from .models import Task


def attempts(count: int) -> str:
    return f"{count} attempt" if count == 1 else f"{count} attempts"


def final_error(task: Task, result: Result) -> str | None:
    """The failure-log error if this outcome ends the task for good, else None."""
    if isinstance(result, Failure):
        return storable_text(result.describe())
    if not isinstance(result, Error):
        return None
    if task.retry_count >= task.retry_max:
        return storable_text(
            f"gave up after {attempts(task.retry_count + 1)} (retry_max={task.retry_max})\n"
            f"{result.describe()}"
        )
    reason = registry.retry_policy(task).gives_up(result.exception)
    if reason is not None:
        return storable_text(
            f"gave up after {attempts(task.retry_count + 1)}: {reason}\n{result.describe()}"
        )
    return None


def refused_reason(result: Result, refused: Exception) -> str:
    """The failure-log error of a run whose outcome the database refused."""
    reason = (
        f"the outcome of this run ({type(result).__name__}) could not be stored: "
        f"{type(refused).__name__}: {refused}"
    )
    if isinstance(result, Error | Failure):
        reason += f"\nThe run's own error:\n{result.describe()}"
    return reason


def retry_values(task: Task, result: Error, now: datetime) -> dict[str, object]:
    """Column values that put an errored task back in the queue for a later retry."""
    arguments, _ = check_arguments(task.arguments)
    return {
        "retry_count": task.retry_count + 1,
        "start_at": now + registry.retry_policy(task).delay(task.retry_count, result.exception),
        "error": storable_text(result.describe()),
        "arguments": arguments,
        "lock_id": None,
        "locked_until": None,
    }


def requeued_copy(task: Task, result: Requeue, now: datetime) -> Task:
    """A fresh task continuing ``task``: same name, arguments, priority and signature."""
    from .models import Task
    from .uuids import uuid7

    arguments, _ = check_arguments(task.arguments)
    return Task(
        id=uuid7(),
        name=task.name,
        arguments=arguments,
        priority=task.priority,
        signature=task.signature,
        queue=task.queue,
        retry_max=task.retry_max,
        retry_count=0,
        created_at=now,
        start_at=now + timedelta(seconds=result.delay_seconds),
    )
