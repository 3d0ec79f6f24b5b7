"""What the per-database classes share: their statements are SQL, sent through Django's cursor.

Each statement is built from the backend's own operations (``quote_name``,
``insert_statement``, ``bulk_insert_sql``, ...), so only what differs between databases
lives in :mod:`.postgresql`, :mod:`.sqlite` and :mod:`.mysql`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime
from functools import cached_property
from typing import Any, cast

from django.db import models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from django.db.models.constants import OnConflict

from ..constants import ARGUMENTS_JSON
from ..models import Task
from ..results import Result
from .base import Claimant, FinishReport, Outcomes, claim_order, mark_stored
from .base import without_repeated_signatures as unique_signatures
from .generic import GenericDatabase

# How a task's value goes to the driver: as it is, adapted by its field, or as JSON text.
PLAIN, ADAPT, JSON = 0, 1, 2


class SQLDatabase(GenericDatabase):
    def __init__(self, alias: str) -> None:
        super().__init__(alias)
        self._local = threading.local()
        self._insert_sql: dict[OnConflict | None, str] = {}

    # Field types whose validated values every driver takes as they are.
    plain_fields: tuple[type[models.Field[Any, Any]], ...] = (
        models.CharField,
        models.TextField,
        models.IntegerField,
    )

    def qn(self, name: str) -> str:
        return self.connection.ops.quote_name(name)

    @cached_property
    def table(self) -> str:
        return self.qn(Task._meta.db_table)

    @cached_property
    def fields(self) -> tuple[Any, ...]:
        return tuple(Task._meta.concrete_fields)

    @cached_property
    def columns(self) -> str:
        return ", ".join(self.qn(f.column) for f in self.fields)

    @cached_property
    def returned(self) -> tuple[Any, ...]:
        """What a claim reads back: every column but the claim's own, which it knows."""
        return tuple(f for f in self.fields if f.attname not in ("lock_id", "locked_until"))

    @cached_property
    def returned_columns(self) -> str:
        return ", ".join(self.qn(f.column) for f in self.returned)

    def execute(
        self, sql: str, params: Sequence[Any], *, fetch: bool = False, worker: bool = False
    ) -> Any:
        """Run one statement through Django's cursor: its rows with ``fetch``, else its
        rowcount. ``worker`` marks the worker's hot statements (a database may prepare
        them)."""
        cursor, fresh = self.take_cursor(self.connection)
        try:
            cursor.execute(sql, params)
            return cursor.fetchall() if fetch else cursor.rowcount
        finally:
            if fresh:
                cursor.close()

    def take_cursor(self, connection: Any) -> tuple[CursorWrapper, bool]:
        """A cursor for one statement, and whether to close it after: the thread's kept
        one when nothing needs a fresh one (making a driver cursor costs more than
        enqueue()'s own Python), else ``connection.cursor()``'s."""
        connection.close_if_health_check_failed()
        driver = connection.connection
        kept = getattr(self._local, "cursor", None)
        reusable = self.reusable(connection)
        if kept is not None and kept[0] is driver and driver is not None and reusable:
            return kept[1], False
        self._local.cursor = None
        if not reusable:
            return connection.cursor(), True
        cursor = self.new_cursor(connection)
        self._local.cursor = (connection.connection, cursor)
        return cursor, False

    def new_cursor(self, connection: BaseDatabaseWrapper) -> CursorWrapper:
        """The cursor the layer keeps for the thread: ``connection.cursor()``."""
        return connection.cursor()

    @staticmethod
    def reusable(connection: Any) -> bool:
        """Whether a kept cursor is what connection.cursor() would give now: not while
        queries are logged (a debug cursor then) or ``cursor`` is patched (a toolbar)."""
        return not connection.queries_logged and "cursor" not in vars(connection)

    def prep(self, field_name: str, value: object) -> object:
        field = cast("models.Field[Any, Any]", Task._meta.get_field(field_name))
        return field.get_db_prep_value(value, self.connection)

    # Publishing -------------------------------------------------------------------

    @cached_property
    def insert_plan(self) -> list[tuple[str, int, Any]]:
        """Each column's attname, how its value is sent (PLAIN, ADAPT, JSON), its field."""

        def kind(field: Any) -> int:
            if isinstance(field, models.JSONField) and field.encoder is None:
                return JSON
            return PLAIN if isinstance(field, self.plain_fields) else ADAPT

        return [(f.attname, kind(f), f) for f in self.fields]

    def json_param(self, text: str) -> Any:
        """JSON text as a parameter for the JSONField column."""
        return text

    def row_params(self, task: Task) -> list[Any]:
        """The INSERT's values for ``task``: validated already, so only adapted."""
        values = task.__dict__
        # Used once: a consumer may change the arguments in place before a later insert.
        validated = values.pop(ARGUMENTS_JSON, None)
        connection = self.connection
        params = []
        for attname, kind, field in self.insert_plan:
            value = values[attname]
            if kind == JSON and validated is not None and validated[0] is value:
                value = self.json_param(validated[1])
            elif kind != PLAIN:
                value = field.get_db_prep_value(value, connection, prepared=kind == ADAPT)
            params.append(value)
        return params

    def insert_sql(self, rows: int, on_conflict: OnConflict | None) -> str:
        """The INSERT of ``rows`` task rows, as Django's insert compiler builds it."""
        if rows != 1:
            return self.build_insert_sql(rows, on_conflict)
        # enqueue()'s: built once.
        sql = self._insert_sql.get(on_conflict)
        if sql is None:
            sql = self._insert_sql[on_conflict] = self.build_insert_sql(rows, on_conflict)
        return sql

    def build_insert_sql(self, rows: int, on_conflict: OnConflict | None) -> str:
        ops = self.connection.ops
        row = ["%s"] * len(self.fields)
        parts = [
            f"{ops.insert_statement(on_conflict=on_conflict)} {self.table} ({self.columns})",
            # django-stubs says rows of str; Django takes rows of placeholders.
            ops.bulk_insert_sql(self.fields, [row] * rows),  # type: ignore[list-item]
        ]
        suffix = ops.on_conflict_suffix_sql(self.fields, on_conflict, (), ())
        if suffix:
            parts.append(suffix)
        return " ".join(parts)

    def insert(self, tasks: Sequence[Task]) -> list[Task]:
        if len(tasks) == 1:
            return self.insert_one(tasks[0])
        unique = unique_signatures(tasks)
        if not unique:
            return []
        signed = any(t.signature is not None for t in unique)
        on_conflict = OnConflict.IGNORE if signed else None
        size = max(1, self.connection.ops.bulk_batch_size(list(self.fields), unique))
        inserted = 0
        # One statement commits on its own; several must stand or fall together.
        several = len(unique) > size
        block = transaction.atomic(using=self.alias, savepoint=False) if several else nullcontext()
        with transaction.mark_for_rollback_on_error(self.alias), block:
            for start in range(0, len(unique), size):
                inserted += self.insert_rows(unique[start : start + size], on_conflict)
            if inserted < len(unique):
                unique = self.survivors(unique)
        mark_stored(unique, self.alias)
        return unique

    def insert_one(self, task: Task) -> list[Task]:
        """enqueue()'s: one statement, and no query after it for a dropped signature."""
        on_conflict = OnConflict.IGNORE if task.signature is not None else None
        with transaction.mark_for_rollback_on_error(self.alias):
            stored = self.insert_rows([task], on_conflict)
        if not stored:
            return []
        task._state.adding = False
        task._state.db = self.alias
        return [task]

    def insert_rows(self, tasks: Sequence[Task], on_conflict: OnConflict | None) -> int:
        """One multi-row INSERT; how many rows it stored."""
        params = [value for task in tasks for value in self.row_params(task)]
        return int(self.execute(self.insert_sql(len(tasks), on_conflict), params))

    def survivors(self, tasks: list[Task]) -> list[Task]:
        """After an insert-or-ignore dropped rows: the signed tasks that were stored."""
        signed = [t.pk for t in tasks if t.signature is not None]
        kept = set(self.tasks().filter(pk__in=signed).values_list("pk", flat=True))
        return [t for t in tasks if t.signature is None or t.pk in kept]

    # Claiming ---------------------------------------------------------------------

    def ready_where(self, claimant: Claimant, now: datetime) -> tuple[str, list[Any]]:
        """The WHERE clause of due, unclaimed tasks of the claimant's queues."""
        qn = self.qn
        where = f"{qn('locked_until')} IS NULL AND {qn('start_at')} <= %s"
        params: list[Any] = [self.prep("start_at", now)]
        if claimant.queues:
            where += f" AND {qn('queue')} IN ({', '.join(['%s'] * len(claimant.queues))})"
            params.extend(claimant.queues)
        if claimant.paused:
            where += f" AND {qn('queue')} NOT IN ({', '.join(['%s'] * len(claimant.paused))})"
            params.extend(claimant.paused)
        return where, params

    def claim_sql(self, claimant: Claimant, limit: int, now: datetime) -> tuple[str, list[Any]]:
        """UPDATE ... WHERE id IN (the first ``limit`` ready ids) RETURNING every column."""
        qn = self.qn
        where, params = self.ready_where(claimant, now)
        pick = (
            f"SELECT {qn('id')} FROM {self.table} WHERE {where} "
            f"ORDER BY {qn('priority')}, {qn('start_at')} LIMIT %s"
        )
        sql = (
            f"UPDATE {self.table} SET {qn('lock_id')} = %s, {qn('locked_until')} = %s "
            f"WHERE {qn('id')} IN ({pick}) RETURNING {self.returned_columns}"
        )
        claim = [self.prep("lock_id", claimant.lock_id), self.prep("locked_until", now)]
        claim[1] = self.prep("locked_until", now + claimant.lock_timeout)
        return sql, [*claim, *params, limit]

    def claim(self, claimant: Claimant, limit: int, now: datetime) -> list[Task]:
        if limit <= 0:
            return []
        sql, params = self.claim_sql(claimant, limit, now)
        rows = self.execute(sql, params, fetch=True, worker=True)
        return self.tasks_from_rows(rows, claimant, now)

    @cached_property
    def converters(self) -> list[tuple[int, list[Any], Any]]:
        """The backend's converters of each returned column, as the ORM applies them."""
        connection = self.connection
        found = []
        for index, field in enumerate(self.returned):
            col = field.get_col(Task._meta.db_table)
            functions = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
            if functions:
                found.append((index, functions, col))
        return found

    @cached_property
    def claim_slots(self) -> tuple[list[str], int, int]:
        """Every attname in field order, and where the claim's two values go."""
        attnames = [f.attname for f in self.fields]
        return attnames, attnames.index("lock_id"), attnames.index("locked_until")

    def tasks_from_rows(
        self, rows: Sequence[Sequence[Any]], claimant: Claimant, now: datetime
    ) -> list[Task]:
        """Claimed tasks from rows of :attr:`returned` columns, converted as the ORM would."""
        connection = self.connection
        attnames, lock_at, until_at = self.claim_slots
        first, second = sorted(
            [(lock_at, claimant.lock_id), (until_at, now + claimant.lock_timeout)]
        )
        tasks = []
        for row in rows:
            values = list(row)
            for index, functions, col in self.converters:
                value = values[index]
                for function in functions:
                    value = function(value, col, connection)
                values[index] = value
            values.insert(first[0], first[1])
            values.insert(second[0], second[1])
            tasks.append(Task.from_db(self.alias, attnames, values))
        tasks.sort(key=claim_order)
        return tasks

    def acknowledge_and_claim(
        self,
        claimant: Claimant,
        outcomes: Sequence[tuple[Task, Result]],
        limit: int,
        now: datetime,
    ) -> tuple[FinishReport | None, list[Task]]:
        if not outcomes:
            return None, self.claim(claimant, limit, now)
        sorted_ = Outcomes.sort(outcomes)
        if limit <= 0 and sorted_.only_done:
            return self.acknowledge(claimant, sorted_.done), []
        with transaction.atomic(using=self.alias, savepoint=False):
            if sorted_.only_done:
                report = self.acknowledge(claimant, sorted_.done)
            else:
                report = self.finish(claimant, outcomes, now)
            return report, self.claim(claimant, limit, now)

    def acknowledge(self, claimant: Claimant, ids: list[uuid.UUID]) -> FinishReport:
        deleted = self.delete_mine(claimant, ids)
        return FinishReport(deleted=deleted, lost=len(ids) - deleted)

    def delete_mine(self, claimant: Claimant, ids: list[uuid.UUID]) -> int:
        qn = self.qn
        sql = (
            f"DELETE FROM {self.table} WHERE {qn('lock_id')} = %s "
            f"AND {qn('id')} IN ({', '.join(['%s'] * len(ids))})"
        )
        params = [self.prep("lock_id", claimant.lock_id)] + [self.prep("id", i) for i in ids]
        return int(self.execute(sql, params, worker=True))
