"""MySQL and MariaDB: no ``UPDATE ... RETURNING``; the claim locks rows with SKIP LOCKED,
then marks them, in one transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction

from ..models import Task
from .base import Claimant
from .sql import SQLDatabase

# SELECT ... FOR UPDATE SKIP LOCKED came with MySQL 8.0.1 and MariaDB 10.6.
MINIMUM_MYSQL = (8, 0, 1)
MINIMUM_MARIADB = (10, 6)


class MySQLDatabase(SQLDatabase):
    vendor = "mysql"
    connect_timeout_option = "connect_timeout"

    def check_support(self) -> str | None:
        connection: Any = self.connection
        version = connection.mysql_version
        minimum: tuple[int, ...]
        if connection.mysql_is_mariadb:
            name, minimum = "MariaDB", MINIMUM_MARIADB
        else:
            name, minimum = "MySQL", MINIMUM_MYSQL
        if version < minimum:
            return (
                f"database {self.alias!r} is {name} {'.'.join(map(str, version))}; the queue "
                f"needs {name} {'.'.join(map(str, minimum))} or newer "
                "(SELECT ... FOR UPDATE SKIP LOCKED)"
            )
        return None

    def claim(self, claimant: Claimant, limit: int, now: datetime) -> list[Task]:
        if limit <= 0:
            return []
        qn = self.qn
        where, params = self.ready_where(claimant, now)
        locked_until = now + claimant.lock_timeout
        with transaction.atomic(using=self.alias, savepoint=False):
            rows = self.execute(
                f"SELECT {self.returned_columns} FROM {self.table} WHERE {where} "
                f"ORDER BY {qn('priority')}, {qn('start_at')} LIMIT %s FOR UPDATE SKIP LOCKED",
                [*params, limit],
                fetch=True,
            )
            if not rows:
                return []
            at = self.returned.index(Task._meta.pk)
            self.execute(
                f"UPDATE {self.table} SET {qn('lock_id')} = %s, {qn('locked_until')} = %s "
                f"WHERE {qn('id')} IN ({', '.join(['%s'] * len(rows))})",
                [
                    self.prep("lock_id", claimant.lock_id),
                    self.prep("locked_until", locked_until),
                    *(row[at] for row in rows),
                ],
            )
        return self.tasks_from_rows(rows, claimant, now)
