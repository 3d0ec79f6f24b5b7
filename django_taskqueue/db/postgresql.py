"""PostgreSQL: array parameters, one round trip per worker cycle, prepared statements.

Why each fast path pays, with figures, is in docs/benchmarks.md ("The database layer").
"""

from __future__ import annotations

import json
import logging
import uuid
import weakref
from collections.abc import Iterator, Sequence
from datetime import datetime
from functools import cached_property, lru_cache
from typing import Any

from django.db import DatabaseError, models
from django.db.models.constants import OnConflict

from ..conf import conf
from ..models import Task
from ..results import Result
from .base import Claimant, FinishReport, Outcomes
from .sql import SQLDatabase

logger = logging.getLogger("django_taskqueue")

# The channel the queue table's trigger notifies (migration 0001).
CHANNEL = "django_taskqueue"
# A change of the paused queues (db/control.py).
CONTROL_CHANNEL = "django_taskqueue_control"
# A psycopg prepare_threshold that no statement reaches: only prepare=True prepares.
ONLY_WHEN_ASKED = 2**62


class PostgreSQLDatabase(SQLDatabase):
    vendor = "postgresql"
    connect_timeout_option = "connect_timeout"
    # Django's PostgreSQL operations send UUIDs and aware datetimes as they are.
    plain_fields = (*SQLDatabase.plain_fields, models.UUIDField, models.DateTimeField)

    def __init__(self, alias: str) -> None:
        super().__init__(alias)
        # Set for good in this process once a pooler loses a prepared statement.
        self.lost_prepared = False

    @property
    def prepare(self) -> bool:
        """Whether the layer may prepare statements in this process."""
        return conf.PREPARE_STATEMENTS and not self.lost_prepared and _psycopg3()

    # B-tree indexes keep NULLs last: the task list's order is the index's.
    nulls_last_by_index = True

    def check_support(self) -> str | None:
        return None

    def estimated_count(self, queryset: Any) -> int | None:
        plan = json.loads(queryset.order_by().explain(format="json"))
        return int(plan[0]["Plan"]["Plan Rows"])

    def json_param(self, text: str) -> Any:
        return _jsonb()(text, dumps=_as_is)

    # Wake-up ----------------------------------------------------------------------

    def can_listen(self) -> bool:
        """psycopg 3.2+, whose ``notifies()`` takes a timeout."""
        if not _psycopg3():
            return False
        import psycopg

        major, minor = (int(part) for part in psycopg.__version__.split(".")[:2])
        return (major, minor) >= (3, 2)

    def listen(self) -> Any:
        wrapper = self.connection
        listening = wrapper.get_new_connection(wrapper.get_connection_params())
        listening.autocommit = True
        listening.execute(f"LISTEN {CHANNEL}")
        listening.execute(f"LISTEN {CONTROL_CHANNEL}")
        return listening

    def notifications(self, listening: Any, timeout: float) -> Iterator[str | None]:
        for notify in listening.notifies(timeout=timeout):
            yield None if notify.channel == CONTROL_CHANNEL else notify.payload

    def announce_pauses(self) -> None:
        self.execute("SELECT pg_notify(%s, '')", [CONTROL_CHANNEL])

    # Statements -------------------------------------------------------------------

    def execute(
        self, sql: str, params: Sequence[Any], *, fetch: bool = False, worker: bool = False
    ) -> Any:
        """Django's cursor, preparing the ``worker``'s statements and, outside
        transactions, the others (PREPARE_STATEMENTS)."""
        connection = self.connection
        if worker:
            prepare = self.prepare and _setup_preparing(connection)
            kept = getattr(self._local, "cursor", None)
            if prepare and kept and not isinstance(kept[1].cursor, _preparing_cursor_class()):
                self._local.cursor = None  # made before the connection was set up to prepare
        else:
            prepare = self.prepare and not connection.in_atomic_block
        cursor, fresh = self.take_cursor(connection)
        try:
            driver_cursor = cursor.cursor
            preparing = isinstance(driver_cursor, _preparing_cursor_class())
            if preparing:
                if prepare and driver_cursor.connection.prepare_threshold is None:
                    # Only statements run with prepare=True: Django's never are.
                    driver_cursor.connection.prepare_threshold = ONLY_WHEN_ASKED
                driver_cursor.prepare_next = prepare
                # Rows in binary parse faster (timestamps above all); jsonb still
                # reaches Django's converter as text.
                driver_cursor.binary_next = fetch and prepare and worker
            try:
                cursor.execute(sql, params)
            except DatabaseError as exc:
                if not (prepare and preparing and _lost_prepared_statement(exc)):
                    raise
                # The server did not know (or already had) the statement's name, so it
                # did not run: a transaction-pooling proxy. Go on without preparing.
                self.stop_preparing()
                connection.connection.prepare_threshold = None
                if connection.in_atomic_block:
                    raise  # the transaction is aborted; the caller retries it
                driver_cursor.prepare_next = False
                cursor.execute(sql, params)
            finally:
                if preparing:
                    driver_cursor.prepare_next = driver_cursor.binary_next = None
            return cursor.fetchall() if fetch else cursor.rowcount
        finally:
            if fresh:
                cursor.close()

    def new_cursor(self, connection: Any) -> Any:
        cursor = super().new_cursor(connection)
        driver = connection.connection
        if type(cursor.cursor) is not _client_cursor_class() or driver.prepare_threshold not in (
            None,
            ONLY_WHEN_ASKED,
        ):
            return cursor  # OPTIONS, the worker's set-up or a tool chose how to bind
        cursor.close()
        # Bound on the server and prepared outside transactions: enqueue() at 0.6x of
        # the raw insert loop instead of 0.55x (docs/benchmarks.md).
        with connection.wrap_database_errors:
            preparing = _preparing_cursor_class()(driver)
        preparing.adapters.register_loader("jsonb", _jsonb_text_loader())
        return connection.make_cursor(preparing)

    def stop_preparing(self) -> None:
        self.lost_prepared = True
        logger.warning(
            "prepared statements do not survive on database %r (a transaction-pooling "
            "proxy?); the worker stops preparing its statements in this process. Set "
            "TASKQUEUE['PREPARE_STATEMENTS'] = False to silence this.",
            self.alias,
        )

    # Publishing -------------------------------------------------------------------

    @cached_property
    def unnest_sql(self) -> str:
        """Many rows as one array per column: one statement for any number of rows."""
        casts = ", ".join(f"%s::{f.db_type(self.connection)}[]" for f in self.fields)
        return (
            f"INSERT INTO {self.table} ({self.columns}) SELECT * FROM UNNEST({casts}) "
            "ON CONFLICT DO NOTHING"
        )

    def insert_rows(self, tasks: Sequence[Task], on_conflict: OnConflict | None) -> int:
        if len(tasks) == 1:
            return super().insert_rows(tasks, on_conflict)
        columns = zip(*(self.row_params(task) for task in tasks), strict=True)
        return int(self.execute(self.unnest_sql, [list(column) for column in columns]))

    # Claiming ---------------------------------------------------------------------

    def ready_where(self, claimant: Claimant, now: datetime) -> tuple[str, list[Any]]:
        qn = self.qn
        where = f"{qn('locked_until')} IS NULL AND {qn('start_at')} <= %s"
        params: list[Any] = [now]
        # One array parameter: the same statement for any number of queues.
        if claimant.queues:
            where += f" AND {qn('queue')} = ANY(%s)"
            params.append(list(claimant.queues))
        if claimant.paused:
            where += f" AND {qn('queue')} <> ALL(%s)"
            params.append(list(claimant.paused))
        return where, params

    def claim_sql(self, claimant: Claimant, limit: int, now: datetime) -> tuple[str, list[Any]]:
        qn = self.qn
        where, params = self.ready_where(claimant, now)
        # id = ANY(ARRAY(...)) keeps one generic plan for any LIMIT (docs/benchmarks.md).
        sql = (
            f"UPDATE {self.table} SET {qn('lock_id')} = %s, {qn('locked_until')} = %s "
            f"WHERE {qn('id')} = ANY(ARRAY(SELECT {qn('id')} FROM {self.table} WHERE {where} "
            f"ORDER BY {qn('priority')}, {qn('start_at')} LIMIT %s FOR UPDATE SKIP LOCKED)) "
            f"RETURNING {self.returned_columns}"
        )
        return sql, [claimant.lock_id, now + claimant.lock_timeout, *params, limit]

    def acknowledge_and_claim(
        self,
        claimant: Claimant,
        outcomes: Sequence[tuple[Task, Result]],
        limit: int,
        now: datetime,
    ) -> tuple[FinishReport | None, list[Task]]:
        if not outcomes or limit <= 0 or not Outcomes.sort(outcomes).only_done:
            return super().acknowledge_and_claim(claimant, outcomes, limit, now)
        # Only successes: the DELETE and the claim in one statement, one round trip.
        claim_sql, claim_params = self.claim_sql(claimant, limit, now)
        qn = self.qn
        sql = (
            f"WITH done AS (DELETE FROM {self.table} WHERE {qn('lock_id')} = %s "
            f"AND {qn('id')} = ANY(%s) RETURNING 1), claimed AS ({claim_sql}) "
            "SELECT (SELECT count(*) FROM done), claimed.* "
            "FROM (SELECT 1) AS one LEFT JOIN claimed ON true"
        )
        ids = [task.pk for task, _ in outcomes]
        rows = self.execute(sql, [claimant.lock_id, ids, *claim_params], fetch=True, worker=True)
        deleted = rows[0][0]
        claimed = [row[1:] for row in rows if row[1] is not None]
        tasks = self.tasks_from_rows(claimed, claimant, now)
        return FinishReport(deleted=deleted, lost=len(ids) - deleted), tasks

    def delete_mine(self, claimant: Claimant, ids: list[uuid.UUID]) -> int:
        qn = self.qn
        sql = f"DELETE FROM {self.table} WHERE {qn('lock_id')} = %s AND {qn('id')} = ANY(%s)"
        return int(self.execute(sql, [claimant.lock_id, list(ids)], worker=True))

    def update_mine(self, claimant: Claimant, ids: Any, **values: Any) -> int:
        ids = list(ids)
        if not ids:
            return 0
        qn = self.qn
        assignments = ", ".join(f"{qn(name)} = %s" for name in values)
        sql = (
            f"UPDATE {self.table} SET {assignments} "
            f"WHERE {qn('lock_id')} = %s AND {qn('id')} = ANY(%s)"
        )
        return int(self.execute(sql, [*values.values(), claimant.lock_id, ids], worker=True))


# Prepared statements ----------------------------------------------------------------
# Django's psycopg connections prepare nothing (prepare_threshold None) and quote values
# into the SQL text. On a connection that runs the worker's statements, and only when
# the site's OPTIONS leave both at Django's defaults, the statements are bound on the
# server and prepared, and keep one generic plan: docs/benchmarks.md has the figures.

_set_up: weakref.WeakSet[Any] = weakref.WeakSet()


def _setup_preparing(connection: Any) -> bool:
    """Whether the next statement on ``connection`` may be prepared (setting it up once)."""
    connection.ensure_connection()
    driver = connection.connection
    if driver in _set_up:
        return driver.cursor_factory is _preparing_cursor_class()
    if connection.in_atomic_block or driver.prepare_threshold not in (None, ONLY_WHEN_ASKED):
        # Inside a transaction the SET below would be undone by a rollback; a site
        # that set prepare_threshold prepares with psycopg's own rule.
        return False
    from django.db.backends.postgresql.base import ServerBindingCursor

    _set_up.add(driver)
    if not issubclass(driver.cursor_factory, ServerBindingCursor | _client_cursor_class()):
        return False  # a cursor factory of the site's: leave it alone
    driver.cursor_factory = _preparing_cursor_class()
    driver.prepare_threshold = ONLY_WHEN_ASKED
    # Binary jsonb as its text, as Django's converter expects; text results are untouched.
    driver.adapters.register_loader("jsonb", _jsonb_text_loader())
    with connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
    return True


@lru_cache(maxsize=1)
def _client_cursor_class() -> type:
    from django.db.backends.postgresql.base import Cursor

    return Cursor


@lru_cache(maxsize=1)
def _preparing_cursor_class() -> type:
    """Django's server-binding cursor, preparing the statement when told to."""
    from django.db.backends.postgresql.base import ServerBindingCursor

    class PreparingCursor(ServerBindingCursor):
        prepare_next: bool | None = None
        binary_next: bool | None = None

        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            kwargs.setdefault("prepare", self.prepare_next)
            kwargs.setdefault("binary", self.binary_next)
            # django-stubs leaves out the psycopg cursor methods Django's cursor inherits.
            return super().execute(query, params, **kwargs)  # type: ignore[misc]

    return PreparingCursor


@lru_cache(maxsize=1)
def _jsonb_text_loader() -> type:
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    class JsonbTextBinaryLoader(Loader):
        format = Format.BINARY

        def load(self, data: Any) -> str:
            # Binary jsonb is a version byte (1) followed by the JSON text.
            return bytes(data[1:]).decode()

    return JsonbTextBinaryLoader


def _lost_prepared_statement(exc: BaseException) -> bool:
    from psycopg import errors

    lost = (errors.InvalidSqlStatementName, errors.DuplicatePreparedStatement)
    return isinstance(exc, lost) or isinstance(exc.__cause__, lost)


@lru_cache(maxsize=1)
def _psycopg3() -> bool:
    from django.db.backends.postgresql import psycopg_any

    return bool(psycopg_any.is_psycopg3)


@lru_cache(maxsize=1)
def _jsonb() -> Any:
    from django.db.backends.postgresql.psycopg_any import Jsonb

    return Jsonb


def _as_is(text: str) -> str:
    return text
