"""The public API of publishing: ``enqueue()``, ``enqueue_many()`` and ``cancel()``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Never

from django.apps import apps
from django.db import connections, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from .conf import conf
from .constants import DEFAULT_QUEUE, NAME_MAX_LENGTH, SIGNATURE_MAX_LENGTH
from .db import queue_db
from .exceptions import InvalidTask, NotReady, TaskRejected, UnknownTaskName
from .metrics import count_enqueued
from .registry import registry
from .signals import send_logged, task_enqueued
from .uuids import uuid7
from .validation import check_number, check_text, validate_task

if TYPE_CHECKING:
    from .models import Task

logger = logging.getLogger("django_taskqueue")


def _task_model() -> type[Task]:
    if not apps.ready:
        raise NotReady(
            "django_taskqueue was used before Django finished loading apps. Add "
            '"django_taskqueue" to INSTALLED_APPS and enqueue tasks from views, commands '
            "or tasks, not at import time (call django.setup() first in scripts)."
        )
    if "django_taskqueue" not in apps.app_configs:
        raise NotReady('add "django_taskqueue" to INSTALLED_APPS, then run migrate')
    from .models import Task

    return Task


@lru_cache(maxsize=64)
def _preprocessor(path: str) -> Callable[[Task], Any]:
    preprocessor: Callable[[Task], Any] = import_string(path)
    return preprocessor


def _preprocess(task: Task) -> None:
    for path in conf.PREPROCESSORS:
        try:
            _preprocessor(path)(task)
        except Exception as exc:
            raise TaskRejected(f"preprocessor {path} rejected task {task.name!r}: {exc}") from exc


def build_task(
    name: str,
    arguments: Mapping[str, Any] | None = None,
    *,
    priority: int | None = None,
    retry_max: int | None = None,
    signature: str | None = None,
    queue: str | None = None,
    delay_seconds: float = 0,
    delay_minutes: float = 0,
    delay_hours: float = 0,
    start_time: datetime | None = None,
) -> Task:
    """An unsaved, validated and preprocessed Task: everything enqueue does but store it."""
    task_model = _task_model()
    check_text("name", name, NAME_MAX_LENGTH)
    now = timezone.now()
    if (
        delay_seconds.__class__ is int
        and delay_minutes.__class__ is int
        and delay_hours.__class__ is int
        and not (delay_seconds or delay_minutes or delay_hours)
    ):
        delay: float = 0  # the defaults: nothing to check
    else:
        delay = (
            check_number("delay_seconds", delay_seconds)
            + 60 * check_number("delay_minutes", delay_minutes)
            + 3600 * check_number("delay_hours", delay_hours)
        )
    if start_time is not None:
        if delay:
            raise InvalidTask("give either start_time or a delay_* option, not both")
        if not isinstance(start_time, datetime):
            raise InvalidTask(f"start_time must be a datetime, not {type(start_time).__name__}")
        if timezone.is_naive(start_time):
            raise InvalidTask(
                f"start_time {start_time!r} is naive; give an aware datetime "
                "(e.g. django.utils.timezone.now() + timedelta(...))"
            )
        start_at = start_time
    elif not delay:
        start_at = now
    else:
        try:
            start_at = now + timedelta(seconds=delay)
        except OverflowError:
            raise InvalidTask(f"the delay of {delay} seconds is too far in the future") from None
    # Positional, in the order of Task._meta.concrete_fields (a test holds it): a
    # third faster than keywords.
    task = task_model(
        name,
        arguments,
        conf.DEFAULT_PRIORITY if priority is None else priority,
        signature,
        DEFAULT_QUEUE if queue is None else queue,
        now,
        start_at,
        None,
        None,
        0,
        registry.retry_max(name) if retry_max is None else retry_max,
        "",
        uuid7(),
    )
    validate_task(task)
    if conf.PREPROCESSORS:
        _preprocess(task)
        validate_task(task)
    if not registry.accepts(task.name):
        raise UnknownTaskName(
            f"no consumer is registered for task name {task.name!r}; known names: "
            f"{', '.join(registry.names()) or 'none'}. Register one with "
            f"@consumer({task.name!r}) in an installed app's tasks.py."
        )
    return task


def _store(tasks: list[Task], using: str) -> list[Task]:
    stored = queue_db(using).insert(tasks)
    count_enqueued(stored)
    # The rows are stored: a failing receiver must not make the caller believe
    # otherwise, so its error is logged, not raised.
    for task in stored:
        send_logged(task_enqueued, task=task)
    return stored


def _resolve_using(using: str | None) -> str:
    alias = conf.DATABASE if using is None else using
    if alias not in connections:
        raise InvalidTask(f"using={alias!r} is not a database alias in settings.DATABASES")
    return alias


def _runs_immediately(task: Task) -> bool:
    limit = conf.RUN_IMMEDIATE_PRIORITY
    return (
        limit is not None
        and task.signature is None
        and task.priority <= limit
        and task.start_at <= task.created_at
    )


_BUILD_OPTIONS = frozenset(
    {
        "name",
        "arguments",
        "priority",
        "retry_max",
        "signature",
        "queue",
        "delay_seconds",
        "delay_minutes",
        "delay_hours",
        "start_time",
    }
)


def _unknown_options(function: str, unknown: Iterable[str]) -> str:
    options = sorted(_BUILD_OPTIONS - {"name", "arguments"})
    if function == "enqueue()":
        options += ["async_delay_ms", "fail_silently", "using"]
    return (
        f"{function} got an unknown option {', '.join(sorted(map(repr, unknown)))}; "
        f"the options are: {', '.join(options)}"
    )


def enqueue(
    name: str,
    arguments: Mapping[str, Any] | None = None,
    *,
    priority: int | None = None,
    retry_max: int | None = None,
    signature: str | None = None,
    queue: str | None = None,
    delay_seconds: float = 0,
    delay_minutes: float = 0,
    delay_hours: float = 0,
    start_time: datetime | None = None,
    async_delay_ms: float = 0,
    fail_silently: bool = False,
    using: str | None = None,
    **unknown: Never,
) -> Task | None:
    """Queue a task for the consumer registered under ``name``.

    Returns the stored :class:`~django_taskqueue.models.Task`, or ``None`` when a task
    with the same ``signature`` is already queued (the new one is dropped). For an
    immediate run, returns the unsaved task that will run once the caller's
    transaction commits. ``async_delay_ms`` stores the task now, in the caller's
    transaction, due that many milliseconds later than it would otherwise be.

    Raises :class:`~django_taskqueue.exceptions.InvalidTask` (bad input),
    :class:`~django_taskqueue.exceptions.UnknownTaskName` (no consumer) or
    :class:`~django_taskqueue.exceptions.TaskRejected` (a preprocessor said no); nothing
    is stored then. ``fail_silently=True`` logs these and database errors instead and
    returns ``None``.
    """
    try:
        if unknown:
            raise InvalidTask(_unknown_options("enqueue()", unknown))
        alias = _resolve_using(using)
        async_delay = check_number("async_delay_ms", async_delay_ms)
        task = build_task(
            name,
            arguments,
            priority=priority,
            retry_max=retry_max,
            signature=signature,
            queue=queue,
            delay_seconds=delay_seconds,
            delay_minutes=delay_minutes,
            delay_hours=delay_hours,
            start_time=start_time,
        )
        if async_delay:
            # Stored now, in the caller's transaction, and due after the delay: nothing
            # waits in a thread that an exiting process would take with it.
            try:
                task.start_at += timedelta(milliseconds=async_delay)
            except OverflowError:
                raise InvalidTask(
                    f"async_delay_ms={async_delay_ms!r} is too far in the future"
                ) from None
        if _runs_immediately(task):
            from .immediate import run_after_commit

            run_after_commit(task, alias)
            return task
        if fail_silently:
            with transaction.atomic(using=alias):
                stored = _store([task], alias)
        else:
            stored = _store([task], alias)
    except Exception:
        if not fail_silently:
            raise
        logger.exception("enqueue(%r) failed; the task was not queued", name)
        return None
    return stored[0] if stored else None


def enqueue_many(
    tasks: Iterable[tuple[str, Mapping[str, Any] | None] | Mapping[str, Any]],
    *,
    using: str | None = None,
    **defaults: Any,
) -> list[Task]:
    """Queue many tasks with one INSERT statement per batch, in one transaction.

    Each item is ``(name, arguments)`` or a dict of :func:`enqueue`'s keyword options
    (with ``name`` and optionally ``arguments``); ``defaults`` apply to every item that
    does not set the option itself. Every task is validated and preprocessed before any
    is stored: one bad task raises and none is stored. Tasks whose signature is already
    queued, or repeated within ``tasks``, are dropped. Returns the stored tasks.
    """
    alias = _resolve_using(using)
    for option in ("async_delay_ms", "fail_silently"):
        if option in defaults:
            raise InvalidTask(f"enqueue_many() does not take {option}")
    built = []
    for index, item in enumerate(tasks):
        if isinstance(item, Mapping):
            options = {**defaults, **item}
            if "name" not in options:
                raise InvalidTask(f"task #{index} has no name")
        elif isinstance(item, tuple) and len(item) == 2:
            options = {**defaults, "name": item[0], "arguments": item[1]}
        else:
            raise InvalidTask(
                f"task #{index} must be (name, arguments) or a dict of options, not {item!r}"
            )
        unknown = options.keys() - _BUILD_OPTIONS
        if unknown:
            raise InvalidTask(f"task #{index}: {_unknown_options('enqueue_many()', unknown)}")
        try:
            built.append(build_task(**options))
        except TypeError as exc:
            raise InvalidTask(f"task #{index}: {exc}") from exc
        except InvalidTask as exc:
            raise type(exc)(f"task #{index}: {exc}") from exc
    return _store(built, alias)


def cancel(signature: str, *, using: str | None = None) -> int:
    """Remove the queued task with this signature; return how many were removed (0 or 1).

    A task a worker is running right now is removed too; the worker's finish then
    finds its claim gone and leaves the queue alone.
    """
    _task_model()
    check_text("signature", signature, SIGNATURE_MAX_LENGTH)
    return queue_db(_resolve_using(using)).cancel(signature)
