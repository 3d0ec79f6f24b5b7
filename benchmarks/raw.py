"""The database's own limit: minimal DB-API loops on a bare copy of the task table."""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime

from django.db import connection

TABLE = "bench_raw"
COLUMNS = (
    "id, name, arguments, priority, signature, queue, created_at, start_at, "
    "lock_id, locked_until, retry_count, retry_max, error"
)


def new_connection(django_settings: bool = False):
    """A plain driver connection (psycopg, MySQLdb or sqlite3) in autocommit mode.

    On PostgreSQL it is psycopg with its own defaults, not Django's: values bound on
    the server, and each statement prepared once it has run a few times. (Django
    quotes values into the SQL text and prepares nothing, for connection poolers.)
    ``django_settings=True`` makes it the way Django does instead.
    """
    if connection.vendor == "postgresql" and not django_settings:
        import psycopg

        params = connection.get_connection_params()
        for django_default in ("cursor_factory", "context", "prepare_threshold"):
            params.pop(django_default, None)
        return psycopg.connect(**params, autocommit=True)
    conn = connection.get_new_connection(connection.get_connection_params())
    if connection.vendor == "sqlite":
        conn.isolation_level = None  # autocommit; BEGIN/COMMIT by hand
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
    elif connection.vendor == "postgresql":
        conn.autocommit = True
    else:
        conn.autocommit(True)
    return conn


def _q(sql: str) -> str:
    return sql.replace("%s", "?") if connection.vendor == "sqlite" else sql


def create_table() -> None:
    """A bare table with the task table's columns, indexes and constraints, no trigger."""
    task_table = "django_taskqueue_task"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
        if connection.vendor == "postgresql":
            cursor.execute(f"CREATE TABLE {TABLE} (LIKE {task_table} INCLUDING ALL)")
        elif connection.vendor == "mysql":
            cursor.execute(f"CREATE TABLE {TABLE} LIKE {task_table}")
        else:
            cursor.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = %s AND sql IS NOT NULL",
                [task_table],
            )
            for (sql,) in cursor.fetchall():
                sql = sql.replace(f'"{task_table}"', f'"{TABLE}"')
                for name in (
                    "taskqueue_task_ready_idx",
                    "taskqueue_task_locked_idx",
                    "taskqueue_task_signature_uniq",
                ):
                    sql = sql.replace(name, f"raw_{name}")
                cursor.execute(sql)


def drop_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")


def _row(arguments: dict | None = None) -> tuple:
    now = datetime.now(UTC)
    if connection.vendor != "postgresql":
        now_value: object = now.replace(tzinfo=None).isoformat(sep=" ")
        ident: object = uuid.uuid4().hex
    else:
        now_value, ident = now, uuid.uuid4()
    return (
        ident,
        "bench.noop",
        json.dumps(arguments or {}),
        16,
        None,
        "default",
        now_value,
        now_value,
        None,
        None,
        0,
        8,
        "",
    )


def _values(count: int) -> str:
    return ", ".join(["(" + ", ".join(["%s"] * 13) + ")"] * count)


class Inserter:
    """One INSERT (and commit) per row, on a connection of its own."""

    def __init__(self, django_settings: bool = False) -> None:
        self.conn = new_connection(django_settings)
        self.cursor = self.conn.cursor()
        self.sql = _q(f"INSERT INTO {TABLE} ({COLUMNS}) VALUES {_values(1)}")

    def run(self, count: int) -> float:
        """Seconds taken to insert ``count`` rows."""
        rows = [_row() for _ in range(count)]
        started = time.perf_counter()
        for row in rows:
            self.cursor.execute(self.sql, row)
        return time.perf_counter() - started

    def close(self) -> None:
        self.conn.close()


def insert_multi_row(count: int, batch: int = 1000) -> float:
    """Rows per second, multi-row INSERTs of ``batch`` rows in one transaction."""
    conn = new_connection()
    cur = conn.cursor()
    rows = [_row() for _ in range(count)]
    started = time.perf_counter()
    cur.execute("BEGIN")
    for start in range(0, count, batch):
        chunk = rows[start : start + batch]
        params = [value for row in chunk for value in row]
        cur.execute(_q(f"INSERT INTO {TABLE} ({COLUMNS}) VALUES {_values(len(chunk))}"), params)
    cur.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return count / elapsed


def claim_and_delete(count: int, batch: int, django_settings: bool = False) -> float:
    """Rows per second: claim ``batch`` due rows and delete them, one commit per batch."""
    conn = new_connection(django_settings)
    cur = conn.cursor()
    vendor = connection.vendor
    now = (
        "now()"
        if vendor == "postgresql"
        else ("UTC_TIMESTAMP(6)" if vendor == "mysql" else "strftime('%Y-%m-%d %H:%M:%f', 'now')")
    )
    pick = (
        f"SELECT id FROM {TABLE} WHERE locked_until IS NULL AND start_at <= {now} "
        f"ORDER BY priority, start_at LIMIT {batch}"
    )
    done = 0
    started = time.perf_counter()
    while done < count:
        if vendor == "postgresql":
            cur.execute(
                f"DELETE FROM {TABLE} WHERE id IN ({pick} FOR UPDATE SKIP LOCKED) RETURNING id"
            )
            got = len(cur.fetchall())
        elif vendor == "mysql":
            cur.execute("BEGIN")
            cur.execute(pick + " FOR UPDATE SKIP LOCKED")
            ids = [r[0] for r in cur.fetchall()]
            if ids:
                cur.execute(
                    f"DELETE FROM {TABLE} WHERE id IN ({', '.join(['%s'] * len(ids))})", ids
                )
            cur.execute("COMMIT")
            got = len(ids)
        else:
            cur.execute(f"DELETE FROM {TABLE} WHERE id IN ({pick}) RETURNING id")
            got = len(cur.fetchall())
        if not got:
            break
        done += got
    elapsed = time.perf_counter() - started
    conn.close()
    return done / elapsed


def pickup_latencies(count: int, interval: float) -> list[float]:
    """PostgreSQL: LISTEN, claim the notified row, record its start; seconds each."""
    listener = new_connection()
    listener.execute(f"LISTEN {TABLE}")
    latencies: list[float] = []
    stop = threading.Event()

    def listen() -> None:
        cur = listener.cursor()
        while not stop.is_set() and len(latencies) < count:
            # The generator holds the connection until it ends: query after it.
            if list(listener.notifies(timeout=0.5, stop_after=1)):
                cur.execute(
                    f"UPDATE {TABLE} SET lock_id = %s, locked_until = now() + interval '5 minutes' "
                    f"WHERE id IN (SELECT id FROM {TABLE} WHERE locked_until IS NULL "
                    "ORDER BY priority, start_at LIMIT 32 FOR UPDATE SKIP LOCKED) "
                    "RETURNING arguments",
                    [uuid.uuid4()],
                )
                now = time.time()
                for (arguments,) in cur.fetchall():
                    if isinstance(arguments, str):  # Django's connection loads JSON as text
                        arguments = json.loads(arguments)
                    latencies.append(now - arguments["t"])

    thread = threading.Thread(target=listen)
    thread.start()
    time.sleep(0.2)
    publisher = new_connection()
    cur = publisher.cursor()
    insert = f"INSERT INTO {TABLE} ({COLUMNS}) VALUES {_values(1)}"
    for _ in range(count):
        row = _row({"t": time.time()})
        with publisher.transaction():
            cur.execute(insert, row)
            cur.execute(f"NOTIFY {TABLE}")
        time.sleep(interval)
    deadline = time.monotonic() + 30
    while len(latencies) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join()
    listener.close()
    publisher.close()
    return latencies


def _percentiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[94]
