"""SQLite: the claim is one ``UPDATE ... RETURNING``; SQLite runs one writer at a time."""

from __future__ import annotations

import sqlite3

from .sql import SQLDatabase

# UPDATE ... RETURNING came with SQLite 3.35.
MINIMUM_VERSION = (3, 35)


class SQLiteDatabase(SQLDatabase):
    vendor = "sqlite"

    def check_support(self) -> str | None:
        if sqlite3.sqlite_version_info < MINIMUM_VERSION:
            return (
                f"database {self.alias!r} is SQLite {sqlite3.sqlite_version}; the queue needs "
                f"SQLite {'.'.join(map(str, MINIMUM_VERSION))} or newer (UPDATE ... RETURNING)"
            )
        return None
