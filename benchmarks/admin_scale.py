"""``python -m benchmarks.admin_scale [--databases sqlite,postgres,mariadb] [--rows N]
[--failures M]``

Times the admin's lists on a big queue: fills a fresh database with N tasks (as
``benchmarks.status_scale`` does: five names, one of them a framework task, four
queues, three priorities, a fifth scheduled for later, a few claimed) and M failures
spread over sixty days, then loads each page of the Task and FailedTask lists through
Django's test client, logged in as a superuser: the first page, page 50, each filter
choice, searches, the failures' date drill-down and the "Show counts" facets. Prints
the median and the slowest of three loads (after one to warm up) and drops the
database.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "taskqueue_admin_bench"
URLS = {
    "postgres": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
    "mariadb": f"mysql://root@127.0.0.1:3306/{DATABASE}",
}
RUNS = 3
NAMES = ["shop.send_receipt", "shop.resize", "shop.sync_stock", "reports.build"]
FRAMEWORK_PATH = "shop.tasks.notify"
QUEUES = ["default", "emails", "reports", "exports"]
# A registered name and a configured queue that no task has: a filter that matches
# nothing reads every row once.
UNUSED_NAME, UNUSED_QUEUE = "shop.refund", "bulk"
TASKS_URL = "/admin/django_taskqueue/task/"
FAILED_URL = "/admin/django_taskqueue/failedtask/"
FAILED_TABLE = "django_taskqueue_failedtask"
FAILED_COLUMNS = (
    "name, arguments, priority, signature, queue, created_at, start_at, lock_id, "
    "locked_until, retry_count, retry_max, error, task_id, failed_at"
)
ERROR = (
    "Traceback (most recent call last):\\n"
    '  File "/srv/shop/tasks.py", line 42, in resize\\n'
    "    image = Image.open(path)\\n"
    '  File "/usr/lib/python3/PIL/Image.py", line 3280, in open\\n'
    "    raise UnidentifiedImageError(msg)\\n"
    "PIL.UnidentifiedImageError: cannot identify image file"
)
# Row n of the failure log, over the column n of a series: the tasks' names and queues,
# failed at some second of the last sixty days.
FAILED_VALUES = """
    CASE (n / 20) % 5 WHEN 0 THEN 'shop.send_receipt' WHEN 1 THEN 'shop.resize'
        WHEN 2 THEN 'shop.sync_stock' WHEN 3 THEN 'reports.build'
        ELSE 'django_taskqueue.framework' END,
    CAST(CASE (n / 20) % 5 WHEN 4
        THEN '{{"path": "shop.tasks.notify", "args": [], "kwargs": {{}}}}'
        ELSE '{{"order": 12345}}' END AS {json}),
    16, NULL,
    CASE WHEN n % 20 < 12 THEN 'default' WHEN n % 20 < 17 THEN 'emails'
        WHEN n % 20 < 19 THEN 'reports' ELSE 'exports' END,
    {failed}, {failed}, NULL, NULL, 8, 8, '{error}', {uuid}, {failed}
"""
FAILED_AT = {
    "postgresql": "now() - (n * 53 % 5184000) * interval '1 second'",
    "sqlite": "strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || (n * 53 % 5184000) || ' seconds')",
    "mysql": "UTC_TIMESTAMP(6) - INTERVAL (n * 53 % 5184000) SECOND",
}


def configure() -> None:
    """Settings for an admin site on the database DATABASE_URL names."""
    import django
    import environ
    from django.conf import settings

    apps = [
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django_taskqueue",
    ]
    framework = django.VERSION >= (6, 0) or importlib.util.find_spec("django_tasks") is not None
    if django.VERSION < (6, 0) and framework:
        apps.append("django_tasks")
    database = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    if "sqlite" in database["ENGINE"]:
        database["OPTIONS"] = {"init_command": "PRAGMA journal_mode=WAL;"}
    settings.configure(
        SECRET_KEY="benchmarks-only",
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=apps,
        DATABASES={"default": database},
        ROOT_URLCONF="benchmarks.admin_scale",
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        STATIC_URL="/static/",
        ALLOWED_HOSTS=["testserver"],
        TASKQUEUE={"AUTODISCOVER": None},
        TASKS=(
            {
                "default": {
                    "BACKEND": "django_taskqueue.backends.TaskQueueBackend",
                    "QUEUES": [*QUEUES, UNUSED_QUEUE],
                }
            }
            if framework
            else {}
        ),
    )
    django.setup()


def __getattr__(name: str) -> Any:
    # This module is the URLconf of the child process (ROOT_URLCONF), once set up.
    if name == "urlpatterns":
        from django.contrib import admin
        from django.urls import path

        return [path("admin/", admin.site.urls)]
    raise AttributeError(name)


def fill_failures(count: int) -> float:
    from django.db import connection

    from benchmarks.status_scale import VENDOR_SQL

    sql = VENDOR_SQL[connection.vendor]
    values = FAILED_VALUES.format(
        json=sql["json"], uuid=sql["uuid"], failed=FAILED_AT[connection.vendor], error=ERROR
    )
    if connection.vendor == "mysql":
        values = values.replace("(n / ", "(n DIV ")
    else:
        values = values.replace("\\n", "' || char(10) || '")
        if connection.vendor == "postgresql":
            values = values.replace("char(10)", "chr(10)")
    series = sql["series"].format(rows=count)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {FAILED_TABLE} ({FAILED_COLUMNS}) SELECT {values} FROM ({series}) AS s"
        )
        if connection.vendor == "postgresql":
            cursor.execute(f"VACUUM ANALYZE {FAILED_TABLE}")
        elif connection.vendor == "mysql":
            cursor.execute(f"ANALYZE TABLE {FAILED_TABLE}")
            cursor.fetchall()
    return time.perf_counter() - started


def pages() -> list[tuple[str, str]]:
    """(label, url) of every page timed."""
    from django.utils import timezone

    from django_taskqueue.models import Task

    some_id = Task.objects.order_by().values_list("pk", flat=True)[500]
    found: list[tuple[str, str]] = [
        ("tasks: first page", TASKS_URL),
        ("tasks: page 50", f"{TASKS_URL}?p=50"),
    ]
    found += [(f"tasks: state={s}", f"{TASKS_URL}?state={s}") for s in ("ready", "scheduled")]
    found += [(f"tasks: state={s}", f"{TASKS_URL}?state={s}") for s in ("running", "stale")]
    found += [(f"tasks: name={n}", f"{TASKS_URL}?name={n}") for n in [*NAMES, FRAMEWORK_PATH]]
    found += [(f"tasks: queue={q}", f"{TASKS_URL}?queue={q}") for q in QUEUES]
    found += [
        (f"tasks: name={UNUSED_NAME} (no task)", f"{TASKS_URL}?name={UNUSED_NAME}"),
        (f"tasks: queue={UNUSED_QUEUE} (no task)", f"{TASKS_URL}?queue={UNUSED_QUEUE}"),
    ]
    found += [(f"tasks: priority={p}", f"{TASKS_URL}?priority={p}") for p in ("earlier", "16")]
    found += [("tasks: priority=later", f"{TASKS_URL}?priority=later")]
    found += [
        ("tasks: search a name", f"{TASKS_URL}?q=resize"),
        ("tasks: search an id", f"{TASKS_URL}?q={some_id}"),
        ("tasks: search, no match", f"{TASKS_URL}?q=nothing-like-it"),
        ("tasks: show counts", f"{TASKS_URL}?_facets=True"),
        ("tasks: show counts, state=ready", f"{TASKS_URL}?_facets=True&state=ready"),
        ("tasks: show counts, queue=exports", f"{TASKS_URL}?_facets=True&queue=exports"),
        ("failed: first page", FAILED_URL),
        ("failed: page 50", f"{FAILED_URL}?p=50"),
    ]
    found += [(f"failed: name={n}", f"{FAILED_URL}?name={n}") for n in [NAMES[1], FRAMEWORK_PATH]]
    found += [(f"failed: queue={q}", f"{FAILED_URL}?queue={q}") for q in ("default", "exports")]
    now = timezone.localtime()
    year = f"{FAILED_URL}?failed_at__year={now.year}"
    month = f"{year}&failed_at__month={now.month}"
    found += [
        ("failed: search a name", f"{FAILED_URL}?q=resize"),
        ("failed: search, no match", f"{FAILED_URL}?q=nothing-like-it"),
        ("failed: date, a year", year),
        ("failed: date, a month", month),
        ("failed: date, a day", f"{month}&failed_at__day={now.day}"),
        ("failed: show counts", f"{FAILED_URL}?_facets=True"),
        ("failed: search the errors (error:)", f"{FAILED_URL}?q=error:nothing-like-it"),
    ]
    return found


def shown_count(html: str) -> str:
    """The count the page's paginator shows, as it reads."""
    paginator = html.split('<p class="paginator">', 1)[-1].split("</p>", 1)[0]
    marked = re.search(r'class="taskqueue-count"[^>]*>([^<]+)<', paginator)
    if marked:
        return marked.group(1)
    plain = re.search(r"([\d,]+) (?:task|failed task)", paginator)
    return plain.group(1) if plain else "?"


def child(rows: int, failures: int) -> None:
    """In a process set up for one database: fill, time, print one JSON object."""
    configure()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from benchmarks.status_scale import fill
    from django_taskqueue import consumer

    call_command("migrate", verbosity=0)
    for name in [*NAMES, UNUSED_NAME]:
        consumer(name)(lambda args: None)
    result: dict[str, Any] = {"vendor": connection.vendor, "rows": rows, "failures": failures}
    result["fill"] = fill(rows) + fill_failures(failures)
    client = Client()
    client.force_login(User.objects.create_superuser("bench", "bench@example.com", "bench"))
    timings = {}
    for label, url in pages():
        runs = []
        for attempt in range(RUNS + 1):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                elapsed = time.perf_counter() - started
            if response.status_code != 200:
                raise SystemExit(f"{url}: {response.status_code}")
            if attempt:
                runs.append(elapsed)
        timings[label] = {
            "median": statistics.median(runs),
            "max": max(runs),
            "queries": len(queries),
            "count": shown_count(response.content.decode()),
        }
    result["timings"] = timings
    print(json.dumps(result))


def run_sql(name: str, sql: str) -> None:
    if name == "postgres":
        command = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql]
    else:
        command = ["mariadb", "-h", "127.0.0.1", "-uroot", "-e", sql]
    subprocess.run(command, check=True)


def create_database(name: str) -> None:
    if name == "postgres":
        run_sql(name, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        run_sql(name, f"CREATE DATABASE {DATABASE}")
    elif name == "mariadb":
        run_sql(
            name,
            f"DROP DATABASE IF EXISTS {DATABASE}; CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4",
        )


def drop_database(name: str) -> None:
    if name == "postgres":
        run_sql(name, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    elif name == "mariadb":
        run_sql(name, f"DROP DATABASE IF EXISTS {DATABASE}")


def measure(url: str, rows: int, failures: int) -> dict[str, Any]:
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    args = [sys.executable, "-m", "benchmarks.admin_scale", "--child"]
    args += ["--rows", str(rows), "--failures", str(failures)]
    out = subprocess.run(args, env=env, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def report(name: str, result: dict[str, Any]) -> None:
    print(
        f"\n{name}: {result['rows']:,} tasks and {result['failures']:,} failures, "
        f"filled in {result['fill']:.1f} s"
    )
    header = ("page", "median (s)", "max (s)", "queries", "count shown")
    table = [header]
    for label, figures in result["timings"].items():
        table.append(
            (
                label,
                f"{figures['median']:.3f}",
                f"{figures['max']:.3f}",
                str(figures["queries"]),
                figures["count"],
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--databases", default="sqlite,postgres,mariadb")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--failures", type=int, default=100_000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        child(options.rows, options.failures)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in options.databases.split(","):
            name = "mariadb" if name == "mysql" else name
            if name == "sqlite":
                url = f"sqlite:///{tmp}/admin.sqlite3"
            else:
                url = URLS[name]
                create_database(name)
            try:
                report(name, measure(url, options.rows, options.failures))
            finally:
                drop_database(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
