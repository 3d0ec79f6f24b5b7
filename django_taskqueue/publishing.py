"""Putting tasks on the queue: ``enqueue()``, ``enqueue_many()`` and ``cancel()``."""

from __future__ import annotations

import json
import logging
import math
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.db import DatabaseError, connections, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models.constants import OnConflict
from django.db.models.sql.subqueries import InsertQuery
from django.utils import timezone
from django.utils.module_loading import import_string

from .conf import conf
from .connections import (
    ONLY_WHEN_ASKED,
    allow_preparing,
    lost_prepared_statement,
    warn_prepared_statements_lost,
)
from .exceptions import InvalidTask, NotReady, TaskRejected, UnknownTaskName
from .registry import CATCH_ALL, registry
from .signals import task_enqueued

if TYPE_CHECKING:
    from .models import Task

logger = logging.getLogger("django_taskqueue")

_JSON_SCALARS = (str, int, float, bool, type(None))


def _models() -> Any:
    if not apps.ready:
        raise NotReady(
            "django_taskqueue was used before Django finished loading apps. Add "
            '"django_taskqueue" to INSTALLED_APPS and enqueue tasks from views, commands '
            "or tasks, not at import time (call django.setup() first in scripts)."
        )
    if "django_taskqueue" not in apps.app_configs:
        raise NotReady('add "django_taskqueue" to INSTALLED_APPS, then run migrate')
    return _models_module()


@lru_cache(maxsize=1)
def _models_module() -> Any:
    from . import models

    return models


def _check_number(option: str, value: Any, *, integer: bool = False) -> float:
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise InvalidTask(f"{option} must be {kind}, not {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise InvalidTask(f"{option} must be finite, not {value!r}")
    if value < 0:
        raise InvalidTask(f"{option} must not be negative, got {value!r}")
    return value


def _check_text(option: str, value: Any, max_length: int) -> str:
    if not isinstance(value, str):
        raise InvalidTask(f"{option} must be a string, not {type(value).__name__} {value!r}")
    if not value:
        raise InvalidTask(f"{option} must not be empty")
    if len(value) > max_length:
        raise InvalidTask(
            f"{option} is {len(value)} characters long; the limit is {max_length}: "
            f"{value[:40]!r}..."
        )
    return value


def _check_json(value: Any, path: str) -> None:
    """Raise InvalidTask naming ``path`` if ``value`` is not plain JSON data."""
    if isinstance(value, _JSON_SCALARS):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidTask(f"{path} is {value!r}, which JSON cannot represent")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidTask(
                    f"{path} has a key {key!r} of type {type(key).__name__}; "
                    "JSON object keys must be strings"
                )
            _check_json(item, f"{path}[{key!r}]")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
        return
    raise InvalidTask(
        f"{path} is a {type(value).__name__}, which is not JSON data "
        "(allowed: dict with string keys, list, str, int, float, bool, None)"
    )


def check_arguments(arguments: Any) -> tuple[dict[str, Any], str]:
    """Validate a task's arguments: a JSON object within MAX_ARGUMENTS_SIZE bytes.

    Returns a copy of the arguments, and their compact JSON text.
    """
    if arguments is None:
        return {}, "{}"
    if not isinstance(arguments, Mapping):
        raise InvalidTask(
            f"arguments must be a dict (a JSON object), not {type(arguments).__name__}"
        )
    arguments = dict(arguments)
    text = _arguments_json(arguments)
    # ASCII only (ensure_ascii): one byte per character.
    limit = conf.MAX_ARGUMENTS_SIZE
    if len(text) > limit:
        raise InvalidTask(
            f"arguments take {len(text)} bytes as JSON; the limit is {limit} "
            "(TASKQUEUE['MAX_ARGUMENTS_SIZE']). Store large data elsewhere and pass its key."
        )
    return arguments, text


def _arguments_json(arguments: dict[str, Any]) -> str:
    """The compact JSON text of ``arguments``; InvalidTask naming the problem if not JSON.

    ``json.dumps`` walks the data in C, and refuses what is not JSON data (other types,
    NaN and infinities). It converts keys that are not strings, though, so the text is
    read back and compared. If anything differs (or fails), the walk in Python names
    the problem; it also accepts tuples, which JSON stores as lists.
    """
    try:
        text = json.dumps(arguments, separators=(",", ":"), allow_nan=False)
        if json.loads(text) == arguments:
            return text
    except (TypeError, ValueError):
        pass
    _check_json(arguments, "arguments")
    return json.dumps(arguments, separators=(",", ":"))


def validate_task(task: Task) -> None:
    """Check every field of an unsaved task; raise InvalidTask naming the problem."""
    models = _models()
    _check_text("name", task.name, 255)
    if task.name == CATCH_ALL:
        raise InvalidTask(f"{CATCH_ALL!r} is reserved for catch-all consumers")
    task.arguments, text = check_arguments(task.arguments)
    # The INSERT sends this text rather than encoding the arguments again.
    task.__dict__[_JSON_TEXT] = (task.arguments, text)
    _check_priority(task.priority, models)
    _check_number("retry_max", task.retry_max, integer=True)
    if task.retry_max > 2**31 - 1:
        raise InvalidTask(f"retry_max must be at most {2**31 - 1}, got {task.retry_max}")
    if task.signature is not None:
        _check_text("signature", task.signature, 255)
    _check_text("queue", task.queue, 100)
    for option in ("start_at", "created_at"):
        value = getattr(task, option)
        if not isinstance(value, datetime) or timezone.is_naive(value):
            raise InvalidTask(f"{option} must be an aware datetime, got {value!r}")


def _check_priority(priority: Any, models: Any) -> None:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidTask(
            f"priority must be an integer, not {type(priority).__name__} {priority!r}"
        )
    if not models.PRIORITY_MIN <= priority <= models.PRIORITY_MAX:
        raise InvalidTask(
            f"priority must be between {models.PRIORITY_MIN} and {models.PRIORITY_MAX}, "
            f"got {priority}"
        )


@lru_cache(maxsize=64)
def _preprocessor(path: str) -> Callable[[Task], Any]:
    return import_string(path)  # type: ignore[no-any-return]


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
    models = _models()
    _check_text("name", name, 255)
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
            _check_number("delay_seconds", delay_seconds)
            + 60 * _check_number("delay_minutes", delay_minutes)
            + 3600 * _check_number("delay_hours", delay_hours)
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
    values = {
        "name": name,
        "arguments": arguments,
        "priority": conf.DEFAULT_PRIORITY if priority is None else priority,
        "signature": signature,
        "queue": models.DEFAULT_QUEUE if queue is None else queue,
        "created_at": now,
        "start_at": start_at,
        "lock_id": None,
        "locked_until": None,
        "retry_count": 0,
        "retry_max": conf.DEFAULT_RETRY_MAX if retry_max is None else retry_max,
        "error": "",
        "id": models.uuid7(),
    }
    task = models.Task.from_values(values)
    validate_task(task)
    if conf._get("PREPROCESSORS"):
        _preprocess(task)
        validate_task(task)
    if not registry.accepts(task.name):
        raise UnknownTaskName(
            f"no consumer is registered for task name {task.name!r}; known names: "
            f"{', '.join(registry.names()) or 'none'}. Register one with "
            f"@consumer({task.name!r}) in an installed app's tasks.py."
        )
    return task


def insert_tasks(tasks: list[Task], using: str) -> list[Task]:
    """Store tasks with one INSERT per batch; return those stored.

    A task whose signature is already queued (or repeated earlier in ``tasks``) is
    dropped: the unique constraint decides, through the database's
    insert-or-ignore, so concurrent publishers never raise nor store two.
    """
    models = _models()
    if not tasks:
        return []
    if len(tasks) == 1:
        return [tasks[0]] if _insert_one(tasks[0], using) else []
    seen: set[str] = set()
    unique = []
    for task in tasks:
        if task.signature is not None:
            if task.signature in seen:
                continue
            seen.add(task.signature)
        unique.append(task)
    connection = connections[using]
    fields = models.Task._meta.concrete_fields
    on_conflict = OnConflict.IGNORE if seen else None
    batch_size = max(1, connection.ops.bulk_batch_size(fields, unique))
    inserted = 0
    # One statement commits on its own; several must stand or fall together.
    several = len(unique) > batch_size
    block = transaction.atomic(using=using, savepoint=False) if several else nullcontext()
    direct = _direct_bulk_insert(connection)
    with transaction.mark_for_rollback_on_error(using), block:
        for start in range(0, len(unique), batch_size):
            batch = unique[start : start + batch_size]
            if direct:
                statements = [_bulk_insert(connection, on_conflict, batch)]
            else:
                query = InsertQuery(models.Task, on_conflict=on_conflict)
                query.insert_values(fields, batch)
                statements = query.get_compiler(using=using).as_sql()
            with connection.cursor() as cursor:
                for sql, params in statements:
                    cursor.execute(sql, params)
                    inserted += cursor.rowcount
        if inserted < len(unique):
            # Only signed tasks can have been dropped; find which survived.
            signed = [t.pk for t in unique if t.signature is not None]
            kept = set(
                models.Task.objects.using(using).filter(pk__in=signed).values_list("pk", flat=True)
            )
            unique = [t for t in unique if t.signature is None or t.pk in kept]
    for task in unique:
        task._state.adding = False
        task._state.db = using
    return unique


def _direct_bulk_insert(connection: Any) -> bool:
    """Whether enqueue_many() builds its multi-row INSERT itself.

    Django's insert compiler spends tens of microseconds of Python per row (pre_save,
    prepare and placeholders for every field of every object); the task rows are
    validated already, so a multi-row ``VALUES`` list with the backend's adaptation of
    each value does the same job. On PostgreSQL Django's compiler stays: it inserts
    through ``UNNEST`` of one array per column, which the database handles faster than
    a long ``VALUES`` list.
    """
    return connection.vendor != "postgresql" and connection.features.has_bulk_insert


def _bulk_insert(connection: Any, on_conflict: Any, tasks: list[Task]) -> tuple[str, list[Any]]:
    """One multi-row INSERT of ``tasks`` and its parameters."""
    sql = _insert_statement(connection, on_conflict, len(tasks))
    return sql, [value for task in tasks for value in _insert_params(task, connection)]


def _insert_statement(connection: Any, on_conflict: Any, rows: int) -> str:
    """The INSERT of ``rows`` task rows, built from the backend's operations as
    Django's insert compiler builds it (every field's placeholder is ``%s``)."""
    ops = connection.ops
    meta = _models().Task._meta
    fields = meta.concrete_fields
    qn = ops.quote_name
    row = ["%s"] * len(fields)
    parts = [
        f"{ops.insert_statement(on_conflict=on_conflict)} {qn(meta.db_table)}",
        f"({', '.join(qn(f.column) for f in fields)})",
        ops.bulk_insert_sql(fields, [row] * rows),
    ]
    suffix = ops.on_conflict_suffix_sql(fields, on_conflict, (), ())
    if suffix:
        parts.append(suffix)
    return " ".join(parts)


def _insert_params(task: Task, connection: Any) -> list[Any]:
    """The INSERT's values for ``task``, adapted for ``connection``'s backend.

    The values were validated (aware datetimes, UUIDs, JSON data), so only the
    backend's adaptation is left: ``prepared=True`` skips re-checking them. The
    arguments go as the JSON text validation made, if they are still the same object.
    """
    values = task.__dict__
    validated = values.get(_JSON_TEXT)
    params = [values[attname] for attname in _task_attnames()]
    for index, field, kind in _adapted_fields(type(connection.ops), connection.vendor):
        value = params[index]
        if kind == _JSON and validated is not None and validated[0] is value:
            params[index] = _json_param(validated[1], connection)
        else:
            params[index] = field.get_db_prep_value(value, connection, prepared=True)
    return params


@lru_cache(maxsize=8)
def _adapted_fields(ops_class: type, vendor: str) -> list[tuple[int, Any, int]]:
    """The fields whose values the backend adapts: (position, field, kind).

    PostgreSQL's own operations take UUIDs and aware datetimes as they are (Django's
    ``adapt_datetimefield_value`` there returns its value, and UUIDs are native), so
    only the JSON is left; a backend that overrides the adaptation gets it called.
    """
    as_they_are = False
    if vendor == "postgresql":
        from django.db.backends.postgresql.operations import DatabaseOperations

        as_they_are = (
            ops_class.adapt_datetimefield_value is DatabaseOperations.adapt_datetimefield_value
        )
    adapted = []
    for index, (field, _, kind) in enumerate(_insert_fields()):
        if kind == _PLAIN:
            continue
        if kind == _CONVERT and as_they_are and field.get_internal_type() in _PG_AS_IS:
            continue
        adapted.append((index, field, kind))
    return adapted


_PG_AS_IS = ("UUIDField", "DateTimeField")


def _json_param(text: str, connection: Any) -> Any:
    """JSON text as a parameter for a JSONField column, as Django's own adaptation sends it."""
    if connection.vendor == "postgresql":
        return _jsonb()(text, dumps=_as_is)
    return text  # SQLite, MySQL and MariaDB take JSON as text


@lru_cache(maxsize=1)
def _jsonb() -> type:
    from django.db.backends.postgresql.psycopg_any import Jsonb

    return Jsonb  # type: ignore[no-any-return]


def _as_is(text: str) -> str:
    return text


def _insert_one(task: Task, using: str) -> bool:
    """enqueue()'s INSERT: False if the task's signature was already queued.

    The SQL is the same every time, only the values change, so it is compiled once
    per connection.
    """
    connection = connections[using]
    on_conflict = None if task.signature is None else OnConflict.IGNORE
    sql = _single_insert_sql(connection, using, on_conflict)
    params = _insert_params(task, connection)
    try:
        cursor = _insert_cursor(connection)
        try:
            stored = _execute(connection, cursor, sql, params) > 0
        except DatabaseError as exc:
            if not (getattr(cursor, "prepare_next", None) and lost_prepared_statement(exc)):
                raise
            # Prepared only outside a transaction, so nothing else was lost: the
            # statement did not run. Go on unprepared in this process.
            _stop_preparing(connection)
            cursor = _insert_cursor(connection)
            stored = _execute(connection, cursor, sql, params) > 0
    except Exception as exc:
        # As transaction.mark_for_rollback_on_error() does.
        if connection.in_atomic_block:
            connection.needs_rollback = True
            connection.rollback_exc = exc
        raise
    if stored:
        task._state.adding = False
        task._state.db = using
    return stored


_insert_sql: dict[tuple[str, str, Any], str] = {}


# How _insert_params treats each field's value.
_PLAIN, _CONVERT, _JSON = 0, 1, 2
# Where validate_task leaves the arguments' JSON text on the instance.
_JSON_TEXT = "_taskqueue_arguments_json"


@lru_cache(maxsize=1)
def _insert_fields() -> list[tuple[Any, str, int]]:
    """The queue table's fields, and what a value needs before it goes to the database.

    Strings and integers were validated and go to every driver as they are; UUIDs,
    datetimes and JSON need the backend's adaptation.
    """
    from django.db import models as fields

    plain = (fields.CharField, fields.TextField, fields.IntegerField)

    def kind(field: Any) -> int:
        if isinstance(field, fields.JSONField) and field.encoder is None:
            return _JSON
        return _PLAIN if isinstance(field, plain) else _CONVERT

    return [(f, f.attname, kind(f)) for f in _models().Task._meta.concrete_fields]


def _execute(connection: Any, cursor: Any, sql: str, params: list[Any]) -> int:
    """Run the one-row INSERT on ``cursor`` (from :func:`_insert_cursor`); its rowcount.

    A driver cursor is wrapped like any Django cursor when something watches queries:
    query logging (``DEBUG``, ``assertNumQueries``), ``execute_wrapper()``, or a
    library that patched ``CursorWrapper.execute`` (error trackers and APM agents do).
    Otherwise it runs with what the wrapper would do around it (thread sharing, a
    broken transaction, error translation), without the wrapper's layers of calls.
    """
    if isinstance(cursor, CursorWrapper):
        cursor.execute(sql, params)
        return cursor.rowcount  # type: ignore[no-any-return]
    if connection.execute_wrappers or connection.queries_logged or _cursor_execute_patched():
        wrapper = connection._prepare_cursor(cursor)
        wrapper.execute(sql, params)
        return wrapper.rowcount  # type: ignore[no-any-return]
    connection.validate_thread_sharing()
    connection.validate_no_broken_transaction()
    with connection.wrap_database_errors:
        cursor.execute(sql, params)
    return cursor.rowcount  # type: ignore[no-any-return]


_CURSOR_EXECUTE = CursorWrapper.execute


def _cursor_execute_patched() -> bool:
    return CursorWrapper.execute is not _CURSOR_EXECUTE


def _insert_cursor(connection: Any) -> Any:
    """A cursor for the one-row INSERT: Django's, or on PostgreSQL with psycopg 3, a
    driver cursor that binds the parameters on the server and may prepare the
    statement (:func:`_execute` runs it).

    Django's default psycopg 3 cursor quotes every value into the SQL text in Python;
    server-side binding sends them apart, which costs less on both sides. Query
    logging, ``execute_wrapper()`` and error translation still apply.

    With ``PREPARE_STATEMENTS`` the INSERT is prepared when it runs outside a
    transaction (autocommit, as in a view without ``ATOMIC_REQUESTS``): the server then
    parses and plans it once per connection. Inside a transaction it is prepared only if
    ``OPTIONS["prepare_threshold"]`` asks, as Django leaves it: a transaction-pooling
    proxy that loses prepared statements would abort the caller's transaction, whereas
    outside one the statement simply did not run and is sent again unprepared.
    """
    if connection.vendor != "postgresql" or not _server_binding_available():
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    driver_connection = connection.connection
    # One driver cursor per driver connection, kept: making one costs more than the
    # rest of enqueue()'s Python. It closes with its connection.
    cursor = _insert_cursors.get(driver_connection)
    if cursor is None or cursor.closed:
        cursor = _insert_cursors[driver_connection] = _preparing_cursor_class()(driver_connection)
    prepare: bool | None = None  # psycopg's own rule: OPTIONS["prepare_threshold"]
    if connection.alias in _unprepared_aliases:
        prepare = False
    elif conf.PREPARE_STATEMENTS and not connection.in_atomic_block:
        allow_preparing(driver_connection)
        prepare = True
    elif driver_connection.prepare_threshold == ONLY_WHEN_ASKED:
        # Prepared outside a transaction; inside one, psycopg must not use it.
        prepare = False
    cursor.prepare_next = prepare
    return cursor


_insert_cursors: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
# Aliases whose prepared statements were lost (a transaction-pooling proxy?).
_unprepared_aliases: set[str] = set()


def _stop_preparing(connection: Any) -> None:
    if connection.alias not in _unprepared_aliases:
        _unprepared_aliases.add(connection.alias)
        warn_prepared_statements_lost(connection.alias, "enqueue() stops preparing its INSERT")


@lru_cache(maxsize=1)
def _preparing_cursor_class() -> type:
    """Django's server-binding cursor that prepares its statement when told to."""
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparingCursor(ServerBindingCursor):  # type: ignore[misc, valid-type]
        prepare_next: bool | None = None

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            kwargs.setdefault("prepare", self.prepare_next)
            return super().execute(query, params, **kwargs)

    return PreparingCursor


@lru_cache(maxsize=1)
def _server_binding_available() -> bool:
    from django.db.backends.postgresql import psycopg_any

    return bool(psycopg_any.is_psycopg3)


@lru_cache(maxsize=1)
def _task_attnames() -> list[str]:
    return [attname for _, attname, _ in _insert_fields()]


def _single_insert_sql(connection: Any, using: str, on_conflict: Any) -> str:
    """The one-row INSERT for the queue table on ``using``, built once."""
    key = (using, connection.settings_dict["ENGINE"], on_conflict)
    sql = _insert_sql.get(key)
    if sql is None:
        sql = _insert_sql[key] = _insert_statement(connection, on_conflict, 1)
    return sql


def _send_enqueued(tasks: list[Task]) -> None:
    # Not has_listeners(): without a sender it misses receivers connected for Task.
    if task_enqueued.receivers:
        # The rows are stored: a failing receiver must not make the caller believe
        # otherwise, so it is logged, not raised.
        for task in tasks:
            for receiver, response in task_enqueued.send_robust(sender=type(task), task=task):
                if isinstance(response, Exception):
                    logger.error(
                        "task_enqueued receiver %r raised: %r",
                        receiver,
                        response,
                        exc_info=response,
                    )


def _store(tasks: list[Task], using: str) -> list[Task]:
    stored = insert_tasks(tasks, using)
    _send_enqueued(stored)
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


def _publish_later(task: Task, using: str, delay_ms: float) -> None:
    """Store ``task`` from a background thread ``delay_ms`` after the caller commits."""

    def store() -> None:
        try:
            _store([task], using)
        except Exception:
            logger.exception(
                "could not store task %s (%s) after its async delay", task.pk, task.name
            )
        finally:
            connections.close_all()

    def start() -> None:
        timer = threading.Timer(delay_ms / 1000, store)
        timer.name = f"taskqueue-async-{task.pk}"
        timer.start()

    transaction.on_commit(start, using=using)


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
) -> Task | None:
    """Queue a task for the consumer registered under ``name``.

    Returns the stored :class:`~django_taskqueue.models.Task`, or ``None`` when a task
    with the same ``signature`` is already queued (the new one is dropped). With
    ``async_delay_ms`` or an immediate run, returns the unsaved task that will be
    stored or run once the caller's transaction commits.

    Raises :class:`~django_taskqueue.exceptions.InvalidTask` (bad input),
    :class:`~django_taskqueue.exceptions.UnknownTaskName` (no consumer) or
    :class:`~django_taskqueue.exceptions.TaskRejected` (a preprocessor said no); nothing
    is stored then. ``fail_silently=True`` logs these and database errors instead and
    returns ``None``.
    """
    try:
        alias = _resolve_using(using)
        async_delay = _check_number("async_delay_ms", async_delay_ms)
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
            _publish_later(task, alias, async_delay)
            return task
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
    models = _models()
    _check_text("signature", signature, 255)
    deleted, _ = (
        models.Task.objects.using(_resolve_using(using)).filter(signature=signature).delete()
    )
    return deleted
