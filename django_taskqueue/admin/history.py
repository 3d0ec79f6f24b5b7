"""The admin's history of what its actions did: Django's ``LogEntry`` rows, which the
admin index shows under "Recent actions" and each object's page under "History"."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any, cast

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Model, QuerySet
from django.db.models.fields.json import KT
from django.http import HttpRequest
from django.utils import formats
from django.utils.translation import gettext

from ..constants import FRAMEWORK_TASK
from ..models import FailedTask, Task

__all__ = [
    "ADDITION",
    "CHANGE",
    "DELETION",
    "LOG_EACH",
    "change_logged",
    "label",
    "log_objects",
    "log_retried",
    "log_tasks",
    "retry_watch",
]

# An action on more rows than this writes one entry for all of them, not one per row:
# "select all" over a million tasks must not write a million log rows.
LOG_EACH = 100

# The function path of a framework task, read by the database without loading arguments.
PATH = KT("arguments__path")


def label(name: str, path: Any = None) -> str:
    """A task's name as people know it: a framework task's function path."""
    if name == FRAMEWORK_TASK and isinstance(path, str) and path:
        return path
    return name


def rows_of(queryset: QuerySet[Any]) -> list[tuple[uuid.UUID, str]]:
    """(pk, label) of up to LOG_EACH + 1 tasks of ``queryset``."""
    values = queryset.order_by().values_list("pk", "name", PATH)[: LOG_EACH + 1]
    return [(pk, label(name, path)) for pk, name, path in values]


def _user(request: HttpRequest) -> int:
    # Actions run behind the admin's login: the user is saved.
    return cast(int, request.user.pk)


def log_objects(request: HttpRequest, objects: Iterable[Model], flag: int, message: str) -> None:
    """One entry per object, through the admin's own logger."""
    objects = list(objects)
    if objects:
        LogEntry.objects.log_actions(
            user_id=_user(request), queryset=objects, action_flag=flag, change_message=message
        )


def log_tasks(
    request: HttpRequest,
    rows: list[tuple[uuid.UUID, str]],
    flag: int,
    message: str,
    *,
    total: int | None = None,
) -> None:
    """Log an action on tasks: one entry per task given by (pk, label), or, past
    LOG_EACH tasks (or when only their ``total`` is known), one entry naming how many."""
    count = len(rows) if total is None else total
    if not count:
        return
    if total is None and len(rows) <= LOG_EACH:
        # Unsaved stand-ins: log_actions() needs only their pk, model and str().
        log_objects(request, [Task(id=pk, name=text) for pk, text in rows], flag, message)
        return
    opts = Task._meta
    name = opts.verbose_name if count == 1 else opts.verbose_name_plural
    LogEntry.objects.create(
        user_id=_user(request),
        content_type_id=ContentType.objects.get_for_model(Task).pk,
        object_id=None,
        object_repr=f"{formats.number_format(count, force_grouping=True)} {name}"[:200],
        action_flag=flag,
        change_message=message,
    )


def change_logged(
    request: HttpRequest,
    queryset: QuerySet[Any],
    change: Callable[[QuerySet[Any]], int],
    flag: int,
    message: str,
) -> int:
    """Apply ``change`` (an update or a delete returning its count) to the tasks of
    ``queryset`` and log it; return the count.

    A selection of up to LOG_EACH tasks is locked and read first, in the change's
    transaction, so the entries name exactly the tasks changed (a worker's claim skips
    locked rows); a bigger one is changed at once and logged as one entry.
    """
    with transaction.atomic(using=queryset.db):
        rows = rows_of(queryset.select_for_update())
        if len(rows) > LOG_EACH:
            count = change(queryset)
            log_tasks(request, [], flag, message, total=count)
            return count
        count = change(queryset.filter(pk__in=[pk for pk, _ in rows]))
    log_tasks(request, rows, flag, message)
    return count


def retry_watch(failures: QuerySet[Any]) -> list[tuple[Any, uuid.UUID, str]]:
    """(pk, task id, label) of up to LOG_EACH + 1 failures, read before a retry."""
    values = failures.order_by().values_list("pk", "task_id", "name", PATH)[: LOG_EACH + 1]
    return [(pk, task_id, label(name, path)) for pk, task_id, name, path in values]


def log_retried(
    request: HttpRequest, using: str, watched: list[tuple[Any, uuid.UUID, str]], retried: int
) -> None:
    """Log a retry as the addition of the tasks it queued: those of ``watched`` whose
    failure left the log and whose task is queued now."""
    if not retried:
        return
    message = gettext("Retried from the failure log.")
    if len(watched) > LOG_EACH:
        log_tasks(request, [], ADDITION, message, total=retried)
        return
    left = set(
        FailedTask.objects.using(using)
        .filter(pk__in=[pk for pk, _, _ in watched])
        .values_list("pk", flat=True)
    )
    rows = [(task_id, name) for pk, task_id, name in watched if pk not in left]
    queued = set(
        Task.objects.using(using)
        .filter(pk__in=[task_id for task_id, _ in rows])
        .values_list("pk", flat=True)
    )
    log_tasks(request, [row for row in rows if row[0] in queued], ADDITION, message)
