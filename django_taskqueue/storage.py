"""Every database operation of the worker: claim, heartbeat, release, finish, recover.

Each write is guarded by the claim (``lock_id``), so a worker whose claim expired and
was taken over never touches the task again. Writes come first in each transaction,
so SQLite takes its write lock at once instead of upgrading a read lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from django.db import connections, transaction
from django.db.models import F

from .conf import conf
from .connections import (
    ONLY_WHEN_ASKED,
    allow_preparing,
    keep_generic_plans,
    lost_prepared_statement,
    warn_prepared_statements_lost,
)
from .lifecycle import final_error, requeued_copy, retry_values
from .models import FailedTask, Task, uuid7
from .publishing import insert_tasks
from .results import Error, Requeue, Result, Success


@dataclass
class FinishReport:
    """What a batch of finished runs did to the queue."""

    deleted: int = 0
    retried: int = 0
    requeued: int = 0
    failed: list[tuple[Task, str]] = field(default_factory=list)
    lost: int = 0  # runs whose claim was gone: another worker owns the task now


def _psycopg3() -> bool:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def _jsonb_text_loader() -> Any:
    """A psycopg loader of binary jsonb that returns the JSON text, as Django expects."""
    from psycopg.adapt import Loader
    from psycopg.pq import Format

    class JsonbTextBinaryLoader(Loader):
        format = Format.BINARY

        def load(self, data: Any) -> str:
            # Binary jsonb is a version byte (1) followed by the JSON text.
            return bytes(data[1:]).decode()

    return JsonbTextBinaryLoader


@lru_cache(maxsize=1)
def _returned_fields() -> tuple[Any, ...]:
    """Every column but the claim's own, which the claimer already knows."""
    return tuple(f for f in Task._meta.concrete_fields if f.name not in ("lock_id", "locked_until"))


class QueueStorage:
    def __init__(
        self,
        *,
        using: str,
        lock_id: uuid.UUID,
        lock_timeout: float,
        queues: Sequence[str] | None = None,
        prepare: bool | None = None,
    ) -> None:
        self.using = using
        self.prepare = conf.PREPARE_STATEMENTS if prepare is None else prepare
        self.lock_id = lock_id
        self.lock_timeout = timedelta(seconds=lock_timeout)
        self.queues = list(queues) if queues else None

    @property
    def connection(self):  # type: ignore[no-untyped-def]
        return connections[self.using]

    def _tasks(self):  # type: ignore[no-untyped-def]
        return Task.objects.using(self.using)

    # Claiming ---------------------------------------------------------------------

    def claim(self, limit: int, now: datetime) -> list[Task]:
        """Claim up to ``limit`` due, unclaimed tasks, in priority then start_at order."""
        if limit <= 0:
            return []
        vendor = self.connection.vendor
        if vendor == "postgresql" or (
            vendor == "sqlite" and self.connection.features.can_return_columns_from_insert
        ):
            tasks = self._claim_returning(limit, now)
        elif self._claims_with_skip_locked():
            tasks = self._claim_skip_locked(limit, now)
        else:
            tasks = self._claim_optimistic(limit, now)
        tasks.sort(key=lambda t: (t.priority, t.start_at))
        return tasks

    def _claims_with_skip_locked(self) -> bool:
        """MySQL/MariaDB: no UPDATE ... RETURNING, but SELECT ... FOR UPDATE SKIP LOCKED."""
        features = self.connection.features
        return self.connection.vendor not in ("postgresql", "sqlite") and bool(
            features.has_select_for_update_skip_locked
        )

    def _prep(self, field_name: str, value: object) -> object:
        return Task._meta.get_field(field_name).get_db_prep_value(value, self.connection)

    def _claim_statement(
        self, limit: int, now: datetime
    ) -> tuple[str, list[object], Sequence[Any], datetime]:
        """UPDATE ... WHERE id IN (SELECT ... LIMIT n [FOR UPDATE SKIP LOCKED]) RETURNING."""
        qn = self.connection.ops.quote_name
        table = qn(Task._meta.db_table)
        locked_until = now + self.lock_timeout
        where, where_params = self._ready_where(now)
        params: list[object] = [
            self._prep("lock_id", self.lock_id),
            self._prep("locked_until", locked_until),
            *where_params,
            limit,
        ]
        pick = (
            f"SELECT {qn('id')} FROM {table} WHERE {where} "
            f"ORDER BY {qn('priority')}, {qn('start_at')} LIMIT %s"
        )
        if self.connection.vendor == "postgresql":
            # id = ANY(ARRAY(...)) keeps one plan for any LIMIT: the picked ids are
            # looked up by primary key. With "id IN (subquery)", the prepared
            # statement's generic plan guesses the LIMIT and may hash-join a full
            # scan of the table, so PostgreSQL plans each claim anew instead.
            match = f"= ANY(ARRAY({pick} FOR UPDATE SKIP LOCKED))"
        else:
            match = f"IN ({pick})"
        fields = _returned_fields()
        sql = (
            f"UPDATE {table} SET {qn('lock_id')} = %s, {qn('locked_until')} = %s "
            f"WHERE {qn('id')} {match} "
            f"RETURNING {', '.join(qn(f.column) for f in fields)}"
        )
        return sql, params, fields, locked_until

    def _ready_where(self, now: datetime) -> tuple[str, list[object]]:
        """The WHERE clause of due, unclaimed tasks (of this worker's queues)."""
        qn = self.connection.ops.quote_name
        params: list[object] = [self._prep("start_at", now)]
        where = f"{qn('locked_until')} IS NULL AND {qn('start_at')} <= %s"
        if self.queues:
            where += f" AND {qn('queue')} IN ({', '.join(['%s'] * len(self.queues))})"
            params.extend(self.queues)
        return where, params

    def _claim_returning(self, limit: int, now: datetime) -> list[Task]:
        sql, params, fields, locked_until = self._claim_statement(limit, now)
        rows = self._execute(sql, params, fetch=True)
        return self._tasks_from_rows(fields, rows, locked_until)

    def acknowledge_and_claim(
        self, outcomes: Sequence[tuple[Task, Result]], limit: int, now: datetime
    ) -> tuple[FinishReport | None, list[Task]]:
        """Apply finished runs and claim up to ``limit`` more, with one commit.

        On PostgreSQL, when every run succeeded (the common case), both are one
        statement: a DELETE and the claiming UPDATE in data-modifying CTEs, so the
        whole cycle is one round trip. Otherwise one transaction does both.
        """
        simple = all(type(result) is Success for _, result in outcomes)
        if outcomes and limit > 0 and simple and self.connection.vendor == "postgresql":
            return self._acknowledge_and_claim_pg(outcomes, limit, now)
        if outcomes and limit <= 0 and simple:
            # Only successes to acknowledge: one DELETE, which commits on its own.
            ids = [task.pk for task, _ in outcomes]
            deleted = self._delete_mine(ids)
            return FinishReport(deleted=deleted, lost=len(ids) - deleted), []
        if simple and limit > 0 and self._claims_with_skip_locked():
            # MySQL/MariaDB: DELETE, SELECT ... FOR UPDATE SKIP LOCKED and UPDATE, one
            # commit.
            with self._transaction():
                report = None
                if outcomes:
                    ids = [task.pk for task, _ in outcomes]
                    deleted = self._delete_mine(ids)
                    report = FinishReport(deleted=deleted, lost=len(ids) - deleted)
                tasks = self._lock_and_mark(limit, now)
            tasks.sort(key=lambda t: (t.priority, t.start_at))
            return report, tasks
        report = None
        block = transaction.atomic(using=self.using) if outcomes and limit > 0 else nullcontext()
        with block:
            if outcomes:
                report = self.finish(outcomes, now)
            tasks = self.claim(limit, now)
        return report, tasks

    def _acknowledge_and_claim_pg(
        self, outcomes: Sequence[tuple[Task, Result]], limit: int, now: datetime
    ) -> tuple[FinishReport, list[Task]]:
        qn = self.connection.ops.quote_name
        table = qn(Task._meta.db_table)
        claim_sql, claim_params, fields, locked_until = self._claim_statement(limit, now)
        sql = (
            f"WITH done AS (DELETE FROM {table} WHERE {qn('lock_id')} = %s "
            f"AND {qn('id')} = ANY(%s) RETURNING 1), claimed AS ({claim_sql}) "
            "SELECT (SELECT count(*) FROM done), claimed.* "
            "FROM (SELECT 1) AS one LEFT JOIN claimed ON true"
        )
        ids = [task.pk for task, _ in outcomes]
        rows = self._execute(sql, [self.lock_id, ids, *claim_params], fetch=True)
        deleted = rows[0][0]
        claimed = [row[1:] for row in rows if row[1] is not None]
        report = FinishReport(deleted=deleted, lost=len(ids) - deleted)
        tasks = self._tasks_from_rows(fields, claimed, locked_until)
        tasks.sort(key=lambda t: (t.priority, t.start_at))
        return report, tasks

    def _tasks_from_rows(
        self, fields: Sequence[Any], rows: list[tuple[Any, ...]], locked_until: datetime
    ) -> list[Task]:
        """Task instances from raw rows, converting values the way the ORM would.

        Cheaper than a RawQuerySet: the converters are looked up once per batch, the
        claim columns are known (this worker, ``locked_until``) so not read back, and
        every concrete field gets a value, so ``from_db`` takes its positional path.
        """
        connection = self.connection
        returned = [f.attname for f in fields]
        converters = []
        for model_field in fields:
            col = model_field.get_col(Task._meta.db_table)
            functions = connection.ops.get_db_converters(col)
            functions += model_field.get_db_converters(connection)
            if functions:
                converters.append((model_field.attname, functions, col))
        # The claim's own two columns: this worker, and until when.
        claim_values = {"lock_id": self.lock_id, "locked_until": locked_until}
        using = self.using
        tasks = []
        for row in rows:
            values = dict(zip(returned, row, strict=True))
            for attname, functions, col in converters:
                value = values[attname]
                for function in functions:
                    value = function(value, col, connection)
                values[attname] = value
            values.update(claim_values)
            tasks.append(Task.from_values(values, db=using))
        return tasks

    def _ready(self, now: datetime):  # type: ignore[no-untyped-def]
        tasks = self._tasks().ready(now)
        if self.queues:
            tasks = tasks.filter(queue__in=self.queues)
        return tasks

    def _claim_skip_locked(self, limit: int, now: datetime) -> list[Task]:
        """MySQL/MariaDB: lock the rows with SKIP LOCKED, mark them, commit."""
        with self._transaction():
            return self._lock_and_mark(limit, now)

    def _lock_and_mark(self, limit: int, now: datetime) -> list[Task]:
        """SELECT ... FOR UPDATE SKIP LOCKED, then UPDATE the rows it locked; the caller
        holds the transaction."""
        qn = self.connection.ops.quote_name
        table = qn(Task._meta.db_table)
        fields = _returned_fields()
        where, params = self._ready_where(now)
        rows = self._execute(
            f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {table} WHERE {where} "
            f"ORDER BY {qn('priority')}, {qn('start_at')} LIMIT %s FOR UPDATE SKIP LOCKED",
            [*params, limit],
            fetch=True,
        )
        locked_until = now + self.lock_timeout
        if rows:
            at = fields.index(Task._meta.pk)
            self._execute(
                f"UPDATE {table} SET {qn('lock_id')} = %s, {qn('locked_until')} = %s "
                f"WHERE {qn('id')} IN ({', '.join(['%s'] * len(rows))})",
                [
                    self._prep("lock_id", self.lock_id),
                    self._prep("locked_until", locked_until),
                    *(row[at] for row in rows),
                ],
            )
        return self._tasks_from_rows(fields, rows, locked_until)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction around the block.

        On MySQL/MariaDB, when Django's connection is in autocommit mode outside any
        atomic block (as the worker's is), the transaction is ``START TRANSACTION`` and
        ``COMMIT`` sent as statements: ``atomic()`` turns autocommit off before and on
        after, two more round trips per claim. Django's view of the connection does
        not change: autocommit, no atomic block. Elsewhere, ``atomic()``.
        """
        connection = self.connection
        if (
            connection.vendor != "mysql"
            or connection.in_atomic_block
            or not connection.get_autocommit()
        ):
            with transaction.atomic(using=self.using, savepoint=False):
                yield
            return
        with connection.cursor() as cursor:
            cursor.execute("START TRANSACTION")
            try:
                yield
            except BaseException:
                # If the connection is gone, so is the transaction.
                with suppress(Exception):
                    cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def _claim_optimistic(self, limit: int, now: datetime) -> list[Task]:
        """Databases without either: the guarded UPDATE decides who wins each row."""
        candidates = list(self._ready(now)[:limit])
        if not candidates:
            return []
        ids = [t.pk for t in candidates]
        locked_until = now + self.lock_timeout
        updated = (
            self._tasks()
            .filter(pk__in=ids, locked_until__isnull=True)
            .update(lock_id=self.lock_id, locked_until=locked_until)
        )
        if updated == len(candidates):
            for task in candidates:
                task.lock_id, task.locked_until = self.lock_id, locked_until
            return candidates
        return list(self._tasks().filter(pk__in=ids, lock_id=self.lock_id))

    # Holding ----------------------------------------------------------------------

    def heartbeat(self, ids: Iterable[uuid.UUID], now: datetime) -> int:
        """Extend this worker's claims on ``ids``; return how many it still holds."""
        return self._update_mine(ids, locked_until=now + self.lock_timeout)

    def release(self, ids: Iterable[uuid.UUID]) -> int:
        """Give claimed, unstarted tasks back to the queue at once."""
        return self._update_mine(ids, lock_id=None, locked_until=None)

    def _update_mine(self, ids: Iterable[uuid.UUID], **values: Any) -> int:
        ids = list(ids)
        if not ids:
            return 0
        return self._tasks().filter(pk__in=ids, lock_id=self.lock_id).update(**values)

    # Finishing --------------------------------------------------------------------

    def finish(self, outcomes: Sequence[tuple[Task, Result]], now: datetime) -> FinishReport:
        """Apply a batch of run outcomes in one transaction, each guarded by the claim."""
        report = FinishReport()
        done, retries, requeues, finals = [], [], [], []
        for task, result in outcomes:
            error = final_error(task, result)
            if error is not None:
                finals.append((task, error))
            elif isinstance(result, Error):
                retries.append((task, result))
            elif isinstance(result, Requeue):
                requeues.append((task, result))
            else:
                done.append(task.pk)
        mine = self._tasks().filter(lock_id=self.lock_id)
        with transaction.atomic(using=self.using, savepoint=False):
            if done:
                report.deleted = self._delete_mine(done)
                report.lost += len(done) - report.deleted
            for task, result in retries:
                if mine.filter(pk=task.pk).update(**retry_values(task, result, now)):
                    report.retried += 1
                else:
                    report.lost += 1
            copies = []
            for task, result in requeues:
                if mine.filter(pk=task.pk).delete()[0]:
                    copies.append(requeued_copy(task, result, now))
                else:
                    report.lost += 1
            report.requeued = len(insert_tasks(copies, self.using))
            failed = []
            for task, error in finals:
                if mine.filter(pk=task.pk).delete()[0]:
                    failed.append(FailedTask.from_task(task, error, failed_at=now))
                    report.failed.append((task, error))
                else:
                    report.lost += 1
            FailedTask.objects.using(self.using).bulk_create(failed)
        return report

    def _delete_mine(self, ids: list[uuid.UUID]) -> int:
        """DELETE the finished tasks this worker still holds; one statement, no ORM."""
        qn = self.connection.ops.quote_name
        if self.connection.vendor == "postgresql":
            # One array parameter: the same statement for any batch, so it is prepared.
            match, params = "= ANY(%s)", [self.lock_id, list(ids)]
        else:
            match = f"IN ({', '.join(['%s'] * len(ids))})"
            params = [self._prep("lock_id", self.lock_id)] + [self._prep("id", i) for i in ids]
        sql = (
            f"DELETE FROM {qn(Task._meta.db_table)} WHERE {qn('lock_id')} = %s "
            f"AND {qn('id')} {match}"
        )
        return self._execute(sql, params)

    def _execute(self, sql: str, params: list[Any], fetch: bool = False) -> Any:
        """Run one of the hot statements: the rowcount, or the rows with ``fetch``.

        On PostgreSQL with psycopg 3 they go through a server-side-binding cursor and,
        with ``PREPARE_STATEMENTS``, are prepared: the server parses and plans each one
        once per connection. Elsewhere they go through Django's cursor.
        """
        connection = self.connection
        if connection.vendor == "postgresql" and _psycopg3():
            connection.ensure_connection()
            with connection.wrap_database_errors:
                try:
                    return self._execute_psycopg(connection.connection, sql, params, fetch)
                except Exception as exc:
                    if not (self.prepare and lost_prepared_statement(exc)):
                        raise
                    # The server did not know (or already had) the statement's name,
                    # so it did not run. A transaction-pooling proxy that does not
                    # track prepared statements does this; carry on without them.
                    warn_prepared_statements_lost(
                        self.using, "the worker stops preparing its statements"
                    )
                    self.prepare = False
                    driver = connection.connection
                    if driver.prepare_threshold == ONLY_WHEN_ASKED:
                        driver.prepare_threshold = None
                    if connection.in_atomic_block:
                        raise  # the transaction is aborted; the caller retries it
                    return self._execute_psycopg(driver, sql, params, fetch)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall() if fetch else cursor.rowcount

    def _execute_psycopg(self, driver: Any, sql: str, params: list[Any], fetch: bool) -> Any:
        import psycopg

        if self.prepare:
            allow_preparing(driver)
            keep_generic_plans(driver)
        with psycopg.Cursor(driver) as cursor:
            if fetch:
                # Binary results parse faster; jsonb still reaches Django's
                # converter as text, as it does through Django's own cursors.
                cursor.adapters.register_loader("jsonb", _jsonb_text_loader())
            cursor.execute(sql, params, prepare=self.prepare, binary=fetch)
            return cursor.fetchall() if fetch else cursor.rowcount

    # Recovering -------------------------------------------------------------------

    def recover_stale(self, now: datetime) -> FinishReport:
        """Put back tasks whose claim expired (their worker died); fail the exhausted.

        Each expiry counts as a failed attempt, so a task that keeps killing its worker
        ends in the failure log after retry_max expiries instead of looping forever.
        """
        report = FinishReport()
        stale = self._tasks().filter(locked_until__lt=now)
        message = (
            "the claim on this task expired before its run finished: the worker running "
            "it died, was killed, or lost its database connection for longer than "
            f"LOCK_TIMEOUT ({self.lock_timeout.total_seconds():g}s)"
        )
        # Exhausted tasks: take them over under a fresh lock id, then move them.
        recovery = uuid7()
        taken = stale.filter(retry_count__gte=F("retry_max")).update(
            lock_id=recovery, locked_until=now + self.lock_timeout
        )
        if taken:
            tasks = list(self._tasks().filter(lock_id=recovery))
            with transaction.atomic(using=self.using, savepoint=False):
                failed = []
                for task in tasks:
                    if self._tasks().filter(pk=task.pk, lock_id=recovery).delete()[0]:
                        error = (
                            f"gave up after {task.retry_count + 1} attempts "
                            f"(retry_max={task.retry_max}): {message}"
                        )
                        failed.append(FailedTask.from_task(task, error, failed_at=now))
                        report.failed.append((task, error))
                FailedTask.objects.using(self.using).bulk_create(failed)
        report.retried = stale.filter(retry_count__lt=F("retry_max")).update(
            lock_id=None,
            locked_until=None,
            retry_count=F("retry_count") + 1,
            error=message,
        )
        return report
