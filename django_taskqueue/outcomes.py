"""What stored runs did, in the words the worker's record and metrics count them."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from .constants import FRAMEWORK_TASK
from .results import Error, Requeue

if TYPE_CHECKING:
    from .db import FinishReport
    from .models import FailedTask, Task
    from .results import Result


@cache
def package_version() -> str:
    try:
        return version("django-taskqueue")
    except PackageNotFoundError:
        return "0.0.0"


def task_label(task: Task | FailedTask) -> str:
    """The name to show and count a task under: a framework task's function path."""
    if task.name == FRAMEWORK_TASK and isinstance(task.arguments, dict):
        return str(task.arguments.get("path", task.name))
    return task.name


def outcomes(batch: list[tuple[Task, Result]], report: FinishReport) -> Iterator[tuple[Task, str]]:
    """What each stored run did: succeeded, failed, retried or requeued (a failed run
    whose claim was lost, and so whose outcome was not stored, is left out)."""
    failed = {task.pk for task, _ in report.failed} if report.failed else set()
    for task, result in batch:
        if task.pk in failed:
            yield task, "failed"
        elif isinstance(result, Error):
            if task.pk in report.retry_at:
                yield task, "retried"
        elif isinstance(result, Requeue):
            yield task, "requeued"
        else:
            yield task, "succeeded"
