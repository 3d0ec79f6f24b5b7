"""Exceptions raised by django_taskqueue."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class TaskQueueError(Exception):
    """Base class of every exception this package raises on purpose."""


class InvalidTask(TaskQueueError, ValueError):
    """A task given to ``enqueue()`` is malformed; nothing was stored.

    The message names the offending option or argument key.
    """


class UnknownTaskName(InvalidTask):
    """No registered consumer can take a task of this name."""


class TaskRejected(TaskQueueError):
    """A preprocessor refused the task; nothing was stored.

    The preprocessor's own exception is chained as ``__cause__``.
    """


class NotReady(TaskQueueError, ImproperlyConfigured):
    """django_taskqueue was used before Django's app registry was ready."""


class TimeLimitExceeded(TaskQueueError):
    """A run took longer than its time limit (``@consumer(..., timeout=...)``,
    ``TASKQUEUE["TASK_TIMEOUT"]``, or a framework task's ``timeout``)."""
