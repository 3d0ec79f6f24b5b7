"""Settings for django_taskqueue, read lazily from ``settings.TASKQUEUE``.

Every default lives here. Values are read on each access from the ``TASKQUEUE`` dict,
which is looked up once and again whenever ``setting_changed`` says it was replaced
(``override_settings``, pytest-django's ``settings``), so nothing is copied at import
time. :mod:`django_taskqueue.checks` validates them; code reading them may assume they
passed the checks.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from .constants import DEFAULT_PRIORITY, DEFAULT_RETRY_MAX

DEFAULTS: dict[str, Any] = {
    # Threads per worker process that run tasks.
    "WORKER_COUNT": 16,
    # Most tasks a worker process claims and holds before they start.
    "BUFFER_SIZE": 32,
    "DEFAULT_PRIORITY": DEFAULT_PRIORITY,
    "DEFAULT_RETRY_MAX": DEFAULT_RETRY_MAX,
    # Unsigned tasks at or below this priority run in-process instead of being stored.
    "RUN_IMMEDIATE_PRIORITY": None,
    # Threads of the in-process pool that runs them.
    "RUN_IMMEDIATE_WORKERS": 4,
    "POLL_STORAGE": True,
    "POLL_INTERVAL": 1.0,
    # Seconds a claim holds before another worker may take the task over.
    "LOCK_TIMEOUT": 300,
    "PREPROCESSORS": [],
    "AUTODISCOVER": "tasks",
    "DATABASE": "default",
    # Largest JSON encoding of a task's arguments, in bytes.
    "MAX_ARGUMENTS_SIZE": 1024 * 1024,
    # Largest backoff exponent: a retry waits at most 2**cap minutes.
    "BACKOFF_EXPONENT_CAP": 20,
    # Seconds a finished Django tasks framework result is kept; None keeps them forever.
    "RESULT_TTL": 7 * 24 * 3600,
    # Seconds a run may take unless its consumer says otherwise; None: no limit.
    "TASK_TIMEOUT": None,
    # Seconds a failure-log row is kept; None keeps them forever.
    "FAILED_TASK_RETENTION": 30 * 24 * 3600,
    # PostgreSQL: the worker prepares its claim and acknowledgement statements.
    "PREPARE_STATEMENTS": True,
    # The database layer's class: None picks it by database; "generic" is the ORM one.
    "DATABASE_LAYER": None,
    # Periodic tasks by schedule name (see django_taskqueue.schedules).
    "SCHEDULE": {},
    # The retry policy of consumers that do not give their own (django_taskqueue.retries).
    "RETRY_BACKOFF": None,
    "RETRY_JITTER": 0.0,
    # Count Prometheus metrics in every process (the worker counts with --metrics-port).
    "METRICS": False,
}


_UNREAD = object()


class TaskQueueSettings:
    """Typed, lazy view of ``settings.TASKQUEUE`` merged over :data:`DEFAULTS`."""

    def __init__(self) -> None:
        self._user: Any = _UNREAD

    def _get(self, key: str) -> Any:
        user = self._user
        if user is _UNREAD:
            # enqueue() reads several keys; the settings object is slow to ask.
            user = self._user = getattr(settings, "TASKQUEUE", None)
        if not isinstance(user, dict):
            return DEFAULTS[key]
        return user.get(key, DEFAULTS[key])

    def reload(self) -> None:
        """Look ``settings.TASKQUEUE`` up again at the next read."""
        self._user = _UNREAD

    def user_settings(self) -> Any:
        return getattr(settings, "TASKQUEUE", None)

    @property
    def WORKER_COUNT(self) -> int:
        value: int = self._get("WORKER_COUNT")
        return value

    @property
    def BUFFER_SIZE(self) -> int:
        value: int = self._get("BUFFER_SIZE")
        return value

    @property
    def DEFAULT_PRIORITY(self) -> int:
        value: int = self._get("DEFAULT_PRIORITY")
        return value

    @property
    def DEFAULT_RETRY_MAX(self) -> int:
        value: int = self._get("DEFAULT_RETRY_MAX")
        return value

    @property
    def RUN_IMMEDIATE_PRIORITY(self) -> int | None:
        value: int | None = self._get("RUN_IMMEDIATE_PRIORITY")
        return value

    @property
    def RUN_IMMEDIATE_WORKERS(self) -> int:
        value: int = self._get("RUN_IMMEDIATE_WORKERS")
        return value

    @property
    def POLL_STORAGE(self) -> bool:
        value: bool = self._get("POLL_STORAGE")
        return value

    @property
    def POLL_INTERVAL(self) -> float:
        return float(self._get("POLL_INTERVAL"))

    @property
    def LOCK_TIMEOUT(self) -> float:
        return float(self._get("LOCK_TIMEOUT"))

    @property
    def PREPROCESSORS(self) -> list[str]:
        return list(self._get("PREPROCESSORS"))

    @property
    def AUTODISCOVER(self) -> str | None:
        value: str | None = self._get("AUTODISCOVER")
        return value

    @property
    def DATABASE(self) -> str:
        value: str = self._get("DATABASE")
        return value

    @property
    def MAX_ARGUMENTS_SIZE(self) -> int:
        value: int = self._get("MAX_ARGUMENTS_SIZE")
        return value

    @property
    def BACKOFF_EXPONENT_CAP(self) -> int:
        value: int = self._get("BACKOFF_EXPONENT_CAP")
        return value

    @property
    def PREPARE_STATEMENTS(self) -> bool:
        value: bool = self._get("PREPARE_STATEMENTS")
        return value

    @property
    def DATABASE_LAYER(self) -> str | None:
        value: str | None = self._get("DATABASE_LAYER")
        return value

    @property
    def TASK_TIMEOUT(self) -> float | None:
        value = self._get("TASK_TIMEOUT")
        return None if value is None else float(value)

    @property
    def FAILED_TASK_RETENTION(self) -> float | None:
        value = self._get("FAILED_TASK_RETENTION")
        return None if value is None else float(value)

    @property
    def SCHEDULE(self) -> dict[str, Any]:
        value: dict[str, Any] = self._get("SCHEDULE")
        return value

    @property
    def RETRY_BACKOFF(self) -> Any:
        return self._get("RETRY_BACKOFF")

    @property
    def RETRY_JITTER(self) -> float:
        return float(self._get("RETRY_JITTER"))

    @property
    def METRICS(self) -> bool:
        return self._get("METRICS") is True

    @property
    def RESULT_TTL(self) -> float | None:
        value = self._get("RESULT_TTL")
        return None if value is None else float(value)


conf = TaskQueueSettings()


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting == "TASKQUEUE":
        conf.reload()


setting_changed.connect(_setting_changed, dispatch_uid="django_taskqueue.conf")
