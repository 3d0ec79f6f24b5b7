"""System checks for ``settings.TASKQUEUE``: one id per problem, each with a hint."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.utils.module_loading import import_string

from .conf import DEFAULTS, conf
from .constants import PRIORITY_MAX, PRIORITY_MIN, QUEUE_MAX_LENGTH, RETRY_MAX_LIMIT
from .db import CLASSES, QueueDatabase, backend_problem, queue_db
from .retries import RetryPolicy

PRIORITY_RANGE = (PRIORITY_MIN, PRIORITY_MAX)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(value: Any) -> bool:
    return _is_int(value) and value >= 1


def _priority(value: Any) -> bool:
    return _is_int(value) and PRIORITY_RANGE[0] <= value <= PRIORITY_RANGE[1]


def _database_layer(value: Any) -> bool:
    if value is None or value in CLASSES:
        return True
    if not isinstance(value, str) or "." not in value:
        return False
    try:
        found = import_string(value)
    except ImportError:
        return False
    return isinstance(found, type) and issubclass(found, QueueDatabase)


# key -> (check id, predicate, what a valid value is)
RULES: dict[str, tuple[str, Callable[[Any], bool], str]] = {
    "WORKER_COUNT": ("E003", _positive_int, "a positive integer"),
    "BUFFER_SIZE": ("E004", _positive_int, "a positive integer"),
    "DEFAULT_PRIORITY": (
        "E005",
        _priority,
        f"an integer from {PRIORITY_RANGE[0]} to {PRIORITY_RANGE[1]} (lower runs first)",
    ),
    "DEFAULT_RETRY_MAX": ("E006", lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "RUN_IMMEDIATE_PRIORITY": (
        "E007",
        lambda v: v is None or _priority(v),
        f"None (off) or an integer from {PRIORITY_RANGE[0]} to {PRIORITY_RANGE[1]}",
    ),
    "RUN_IMMEDIATE_WORKERS": ("E008", _positive_int, "a positive integer"),
    "POLL_STORAGE": ("E009", lambda v: isinstance(v, bool), "True or False"),
    "POLL_INTERVAL": ("E010", lambda v: _is_number(v) and v > 0, "a number of seconds > 0"),
    "LOCK_TIMEOUT": ("E011", lambda v: _is_number(v) and v >= 1, "a number of seconds >= 1"),
    "PREPROCESSORS": (
        "E012",
        lambda v: isinstance(v, list | tuple) and all(isinstance(p, str) for p in v),
        "a list of dotted paths to callables",
    ),
    "AUTODISCOVER": (
        "E013",
        lambda v: v is None or (isinstance(v, str) and bool(v)),
        'a module name such as "tasks", or None to turn autodiscovery off',
    ),
    "DATABASE": (
        "E014",
        lambda v: isinstance(v, str) and v in settings.DATABASES,
        "an alias from settings.DATABASES",
    ),
    "MAX_ARGUMENTS_SIZE": ("E015", _positive_int, "a positive number of bytes"),
    "BACKOFF_EXPONENT_CAP": (
        "E016",
        lambda v: _is_int(v) and 0 <= v <= 30,
        "an integer from 0 to 30 (a retry waits at most 2**cap minutes)",
    ),
    "PREPARE_STATEMENTS": ("E025", lambda v: isinstance(v, bool), "True or False"),
    "DATABASE_LAYER": (
        "E028",
        _database_layer,
        'None (chosen by database), "generic", or the dotted path of a QueueDatabase class',
    ),
    "RESULT_TTL": (
        "E019",
        lambda v: v is None or (_is_number(v) and v > 0),
        "a number of seconds > 0, or None to keep finished results forever",
    ),
    "TASK_TIMEOUT": (
        "E030",
        lambda v: v is None or (_is_number(v) and v > 0),
        "a number of seconds > 0, or None for no time limit",
    ),
    "FAILED_TASK_RETENTION": (
        "E029",
        lambda v: v is None or (_is_number(v) and v > 0),
        "a number of seconds > 0, or None to keep the failure log forever",
    ),
    "SCHEDULE": ("E031", lambda v: isinstance(v, dict), "a dict of schedules by name"),
    "METRICS": (
        "E034",
        lambda v: v is False or (v is True and bool(importlib.util.find_spec("prometheus_client"))),
        "True (with prometheus_client installed: pip install 'django-taskqueue[prometheus]') "
        "or False",
    ),
}


def check_settings(**kwargs: Any) -> list[CheckMessage]:
    user = conf.user_settings()
    if user is None:
        return []
    if not isinstance(user, dict):
        return [
            Error(
                f"TASKQUEUE must be a dict, not {type(user).__name__}.",
                hint='Write TASKQUEUE = {"WORKER_COUNT": 16, ...} in your settings.',
                id="django_taskqueue.E001",
            )
        ]
    errors: list[CheckMessage] = []
    unknown = sorted(set(user) - set(DEFAULTS))
    if unknown:
        errors.append(
            Error(
                f"TASKQUEUE has unknown key(s): {', '.join(map(repr, unknown))}.",
                hint=f"Valid keys: {', '.join(sorted(DEFAULTS))}.",
                id="django_taskqueue.E002",
            )
        )
    for key, (check_id, valid, expected) in RULES.items():
        if key in user and not valid(user[key]):
            errors.append(
                Error(
                    f"TASKQUEUE[{key!r}] is {user[key]!r}; it must be {expected}.",
                    hint=f"The default is {DEFAULTS[key]!r}.",
                    id=f"django_taskqueue.{check_id}",
                )
            )
    if "PREPROCESSORS" in user and RULES["PREPROCESSORS"][1](user["PREPROCESSORS"]):
        for path in user["PREPROCESSORS"]:
            try:
                target = import_string(path)
            except ImportError as exc:
                problem = f"cannot be imported ({exc})"
            else:
                if callable(target):
                    continue
                problem = "is not callable"
            errors.append(
                Error(
                    f"TASKQUEUE['PREPROCESSORS'] entry {path!r} {problem}.",
                    hint="Give the dotted path of a function that takes a Task.",
                    id="django_taskqueue.E017",
                )
            )
    return errors


def check_schedules(**kwargs: Any) -> list[CheckMessage]:
    """Each schedule, from ``@periodic`` or settings: its expression, its time zone and
    the task it names."""
    from datetime import UTC, datetime

    from .periodic_tasks import decorated, from_settings
    from .schedules import Schedule, ScheduleError

    entries = conf.SCHEDULE
    if not isinstance(entries, dict):
        return []  # reported by E031
    errors: list[CheckMessage] = []
    schedules: list[Schedule] = []
    for name, entry in entries.items():
        try:
            schedules.append(from_settings(name, entry))
        except ScheduleError as exc:
            errors.append(_schedule_error(exc))
    for schedule in [*decorated(), *schedules]:
        try:
            schedule.enqueuer(conf.DATABASE, datetime.now(UTC))
        except ScheduleError as exc:
            errors.append(_schedule_error(exc))
    return errors


def _schedule_error(exc: Exception) -> CheckMessage:
    return Error(
        f"{exc}.",
        hint="See docs/periodic.md for the ways to declare a schedule.",
        id="django_taskqueue.E032",
    )


def check_retry_settings(**kwargs: Any) -> list[CheckMessage]:
    """RETRY_BACKOFF and RETRY_JITTER: a policy built from them must work."""
    user = conf.user_settings()
    if not isinstance(user, dict):
        return []
    try:
        RetryPolicy.build(
            "TASKQUEUE",
            backoff=user.get("RETRY_BACKOFF"),
            jitter=user.get("RETRY_JITTER"),
        )
    except (TypeError, ValueError) as exc:
        return [_retry_error(exc)]
    return []


def _retry_error(exc: Exception) -> CheckMessage:
    return Error(
        f"{exc}.",
        hint="See the retry policies in docs/concepts.md.",
        id="django_taskqueue.E033",
    )


def check_databases(**kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if not settings.USE_TZ:
        errors.append(
            Error(
                "django_taskqueue needs USE_TZ = True: start times, claims and retries are "
                "aware datetimes, compared across processes and machines.",
                hint="Set USE_TZ = True (the default since Django 5.0).",
                id="django_taskqueue.E024",
            )
        )
    alias = conf.DATABASE
    if not isinstance(alias, str) or alias not in settings.DATABASES:
        return errors  # the alias itself is reported by E014
    problem = backend_problem(settings.DATABASES[alias].get("ENGINE", ""))
    if problem is not None:
        errors.append(
            Error(
                f"The task queue database {alias!r} cannot be used: {problem}.",
                hint="Use PostgreSQL, SQLite, MySQL/MariaDB or another database whose "
                "Django backend has SELECT ... FOR UPDATE SKIP LOCKED, or point "
                "TASKQUEUE['DATABASE'] (or TASKQUEUE['DATABASE_LAYER']) elsewhere.",
                id="django_taskqueue.E018",
            )
        )
    return errors


def check_database_support(databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The database's server version and features (tagged "database": it connects)."""
    alias = conf.DATABASE
    if not databases or alias not in databases or alias not in settings.DATABASES:
        return []
    try:
        problem = queue_db(alias).check_support()
    except (ImportError, ImproperlyConfigured, DatabaseError):
        return []  # reported by E018, or the database is not reachable now
    if problem is None:
        return []
    return [
        Error(
            f"The task queue cannot run on {problem}.",
            hint="Upgrade the database server (SQLite 3.35, MariaDB 10.6, MySQL 8.0.1, "
            "PostgreSQL 13 or newer), or point TASKQUEUE['DATABASE'] elsewhere.",
            id="django_taskqueue.E026",
        )
    ]


BACKEND_OPTIONS = {
    "RETRY_MAX",
    "DATABASE",
    "RETRY_BACKOFF",
    "RETRY_JITTER",
    "GIVE_UP_ON",
    "RETRY_ON",
}


def check_backend(alias: str, options: Any, queues: Any) -> list[CheckMessage]:
    """Checks of a ``TASKS`` entry whose backend is ``TaskQueueBackend``."""
    where = f"TASKS[{alias!r}]"
    errors: list[CheckMessage] = []
    if not isinstance(options, dict):
        options = {}
        errors.append(
            Error(
                f"{where}['OPTIONS'] must be a dict.",
                hint=f"Valid keys: {', '.join(sorted(BACKEND_OPTIONS))}.",
                id="django_taskqueue.E020",
            )
        )
    unknown = sorted(set(options) - BACKEND_OPTIONS)
    if unknown:
        errors.append(
            Error(
                f"{where}['OPTIONS'] has unknown key(s): {', '.join(map(repr, unknown))}.",
                hint=f"Valid keys: {', '.join(sorted(BACKEND_OPTIONS))}.",
                id="django_taskqueue.E027",
            )
        )
    retry_max = options.get("RETRY_MAX")
    if "RETRY_MAX" in options and not (_is_int(retry_max) and 0 <= retry_max <= RETRY_MAX_LIMIT):
        errors.append(
            Error(
                f"{where}['OPTIONS']['RETRY_MAX'] is {retry_max!r}; it must be an integer >= 0.",
                hint="Leave it out to use TASKQUEUE['DEFAULT_RETRY_MAX'].",
                id="django_taskqueue.E021",
            )
        )
    try:
        RetryPolicy.build(
            f"{where}['OPTIONS']",
            backoff=options.get("RETRY_BACKOFF"),
            jitter=options.get("RETRY_JITTER"),
            give_up_on=options.get("GIVE_UP_ON", ()),
            retry_on=options.get("RETRY_ON"),
        )
    except (TypeError, ValueError) as exc:
        errors.append(_retry_error(exc))
    database = options.get("DATABASE")
    if "DATABASE" in options and not (isinstance(database, str) and database in settings.DATABASES):
        errors.append(
            Error(
                f"{where}['OPTIONS']['DATABASE'] is {database!r}, not an alias from "
                "settings.DATABASES.",
                hint="Leave it out to use TASKQUEUE['DATABASE'].",
                id="django_taskqueue.E022",
            )
        )
    for queue in queues:
        if not (isinstance(queue, str) and 1 <= len(queue) <= QUEUE_MAX_LENGTH):
            errors.append(
                Error(
                    f"{where}['QUEUES'] has {queue!r}; queue names are strings of 1 to "
                    f"{QUEUE_MAX_LENGTH} characters.",
                    hint="The queue name is stored in the queue table's 'queue' column.",
                    id="django_taskqueue.E023",
                )
            )
    return errors
