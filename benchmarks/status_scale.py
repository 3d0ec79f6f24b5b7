"""``python -m benchmarks.status_scale [--databases sqlite,postgres,mariadb] [--rows N]``

Times ``taskqueue_status`` and ``taskqueue_health`` on a big queue: fills the task table
of a fresh database with N rows (spread over queues, names and priorities, a fifth of
them scheduled for later, a few claimed), adds failures and worker records, runs each
command in this process (the median of five runs) and as a process of its own (Python
and Django start-up included), prints a table and drops the database.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "taskqueue_status_bench"
URLS = {
    "postgres": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
    "mariadb": f"mysql://root@127.0.0.1:3306/{DATABASE}",
}
RUNS = 5
COMMANDS = {
    "taskqueue_status": ["taskqueue_status"],
    "taskqueue_status --by-name": ["taskqueue_status", "--by-name"],
    "taskqueue_status --json": ["taskqueue_status", "--json"],
    "taskqueue_status --by-name --json": ["taskqueue_status", "--by-name", "--json"],
    "taskqueue_health --max-lag 60": ["taskqueue_health", "--max-lag", "60"],
}
TABLE = "django_taskqueue_task"
COLUMNS = (
    "id, name, arguments, priority, signature, queue, created_at, start_at, "
    "lock_id, locked_until, retry_count, retry_max, error"
)
# Row n's values, as SQL over the column n of a series: 60% of the tasks in "default",
# 25% in "emails", 10% in "reports", 5% in "exports"; five names, one of them a
# framework task; three priorities; every fifth one scheduled for later; the first 100
# running and the next 20 stale.
VALUES = """
    {uuid},
    CASE (n / 20) % 5 WHEN 0 THEN 'shop.send_receipt' WHEN 1 THEN 'shop.resize'
        WHEN 2 THEN 'shop.sync_stock' WHEN 3 THEN 'reports.build'
        ELSE 'django_taskqueue.framework' END,
    CAST(CASE (n / 20) % 5 WHEN 4
        THEN '{{"path": "shop.tasks.notify", "args": [], "kwargs": {{}}}}'
        ELSE '{{"order": 12345}}' END AS {json}),
    CASE (n / 7) % 3 WHEN 0 THEN 0 WHEN 1 THEN 16 ELSE 100 END,
    NULL,
    CASE WHEN n % 20 < 12 THEN 'default' WHEN n % 20 < 17 THEN 'emails'
        WHEN n % 20 < 19 THEN 'reports' ELSE 'exports' END,
    {ago},
    CASE WHEN n % 5 = 0 THEN {later} ELSE {ago} END,
    CASE WHEN n <= 120 THEN {uuid} ELSE NULL END,
    CASE WHEN n <= 100 THEN {locked} WHEN n <= 120 THEN {stale} ELSE NULL END,
    0, 8, ''
"""
VENDOR_SQL = {
    "postgresql": {
        "series": "SELECT n FROM generate_series(1, {rows}) AS n",
        "uuid": "gen_random_uuid()",
        "json": "jsonb",
        "ago": "now() - (n % 86400) * interval '1 second'",
        "later": "now() + (n % 3600 + 60) * interval '1 second'",
        "stale": "now() - interval '1 minute'",
        "locked": "now() + interval '1 hour'",
    },
    "sqlite": {
        "series": "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s "
        "WHERE n < {rows}) SELECT n FROM s",
        "uuid": "lower(hex(randomblob(16)))",
        "json": "text",
        "ago": "strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || (n % 86400) || ' seconds')",
        "later": "strftime('%Y-%m-%d %H:%M:%f', 'now', '+' || (n % 3600 + 60) || ' seconds')",
        "stale": "strftime('%Y-%m-%d %H:%M:%f', 'now', '-60 seconds')",
        "locked": "strftime('%Y-%m-%d %H:%M:%f', 'now', '+3600 seconds')",
    },
    "mysql": {
        "series": "SELECT seq AS n FROM seq_1_to_{rows}",
        "uuid": "UUID()",
        "json": "char",
        "ago": "UTC_TIMESTAMP(6) - INTERVAL (n % 86400) SECOND",
        "later": "UTC_TIMESTAMP(6) + INTERVAL (n % 3600 + 60) SECOND",
        "stale": "UTC_TIMESTAMP(6) - INTERVAL 1 MINUTE",
        "locked": "UTC_TIMESTAMP(6) + INTERVAL 1 HOUR",
    },
}


def fill(rows: int) -> float:
    """Insert ``rows`` tasks, 500 failures and ten worker records; return the seconds
    the tasks took."""
    from django.db import connection

    sql = VENDOR_SQL[connection.vendor]
    values = VALUES.format(**sql)
    # MariaDB's integer division is DIV; "/" gives a decimal.
    if connection.vendor == "mysql":
        values = values.replace("(n / ", "(n DIV ")
    series = sql["series"].format(rows=rows)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One NOTIFY per inserted row is work the figures are not about.
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER django_taskqueue_task_notify")
        cursor.execute(f"INSERT INTO {TABLE} ({COLUMNS}) SELECT {values} FROM ({series}) AS s")
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER django_taskqueue_task_notify")
            cursor.execute(f"VACUUM ANALYZE {TABLE}")
        elif connection.vendor == "mysql":
            cursor.execute(f"ANALYZE TABLE {TABLE}")
            cursor.fetchall()
    elapsed = time.perf_counter() - started
    fill_failures_and_workers()
    return elapsed


def fill_failures_and_workers() -> None:
    from django_taskqueue.db import queue_db
    from django_taskqueue.models import FailedTask, WorkerRecord

    now = queue_db().database_now()
    FailedTask.objects.bulk_create(
        FailedTask(
            task_id=uuid.uuid4(),
            name="shop.resize",
            queue="default",
            error="ValueError: not an image",
            failed_at=now - timedelta(minutes=n % 120),
        )
        for n in range(500)
    )
    WorkerRecord.objects.bulk_create(
        WorkerRecord(
            id=uuid.uuid4(),
            hostname=f"web-{n}",
            pid=1000 + n,
            queues=[] if n % 2 else ["default", "emails"],
            threads=16,
            version="bench",
            started_at=now - timedelta(hours=1),
            last_seen=now if n < 8 else now - timedelta(minutes=10),
            # Live for the length of the run.
            expires_at=now + timedelta(hours=1) if n < 8 else now - timedelta(minutes=9),
            succeeded=1000 * n,
        )
        for n in range(10)
    )


def run_command(args: list[str]) -> float:
    from django.core.management import call_command

    started = time.perf_counter()
    with contextlib.suppress(SystemExit):  # taskqueue_health's exit code
        call_command(*args, stdout=io.StringIO())
    return time.perf_counter() - started


def run_process(args: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    return time.perf_counter() - started


def child(rows: int) -> None:
    """In a process set up for one database: fill, time, print one JSON object."""
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    from django.db import connection

    result: dict[str, object] = {"vendor": connection.vendor, "rows": rows}
    result["fill"] = fill(rows)
    timings = {}
    for label, args in COMMANDS.items():
        runs = [run_command(args) for _ in range(RUNS)]
        timings[label] = {
            "median": statistics.median(runs),
            "max": max(runs),
            "process": run_process(args),
        }
    # What any command costs as a process: Python and Django starting.
    timings["(start-up only: manage.py version)"] = {
        "median": 0.0,
        "max": 0.0,
        "process": statistics.median(run_process(["version"]) for _ in range(3)),
    }
    result["timings"] = timings
    status = io.StringIO()
    call_command("taskqueue_status", stdout=status)
    result["status"] = status.getvalue()
    print(json.dumps(result))


def create_database(name: str) -> None:
    if name == "postgres":
        for sql in (
            f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)",
            f"CREATE DATABASE {DATABASE}",
        ):
            subprocess.run(
                ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql],
                check=True,
            )
    elif name == "mariadb":
        subprocess.run(
            [
                "mariadb",
                "-h",
                "127.0.0.1",
                "-uroot",
                "-e",
                f"DROP DATABASE IF EXISTS {DATABASE}; "
                f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4",
            ],
            check=True,
        )


def drop_database(name: str) -> None:
    if name == "postgres":
        sql = f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql], check=True
        )
    elif name == "mariadb":
        subprocess.run(
            ["mariadb", "-h", "127.0.0.1", "-uroot", "-e", f"DROP DATABASE IF EXISTS {DATABASE}"],
            check=True,
        )


def measure(name: str, url: str, rows: int) -> dict[str, object]:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "benchmarks.settings"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    args = [sys.executable, "-m", "benchmarks.status_scale", "--child", "--rows", str(rows)]
    out = subprocess.run(args, env=env, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def report(name: str, result: dict[str, object]) -> None:
    print(f"\n{name}: {result['rows']:,} tasks, filled in {result['fill']:.1f} s")
    header = ("command", "in process, median (s)", "in process, max (s)", "as a process (s)")
    table = [header]
    timings = result["timings"]
    assert isinstance(timings, dict)
    for label, figures in timings.items():
        table.append(
            (
                label,
                f"{figures['median']:.3f}",
                f"{figures['max']:.3f}",
                f"{figures['process']:.2f}",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    print(result["status"])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--databases", default="sqlite,postgres,mariadb")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.rows)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in options.databases.split(","):
            name = "mariadb" if name == "mysql" else name
            if name == "sqlite":
                url = f"sqlite:///{tmp}/status.sqlite3"
            else:
                url = URLS[name]
                create_database(name)
            try:
                report(name, measure(name, url, options.rows))
            finally:
                drop_database(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
