"""The database layer: one class per database, chosen once, every statement through Django."""

import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from django_taskqueue import enqueue, enqueue_many
from django_taskqueue.db import Claimant, database_class, queue_db
from django_taskqueue.db.generic import GenericDatabase
from django_taskqueue.models import FailedTask, Task, uuid7
from django_taskqueue.results import Error, Failure, Requeue, Success

pytestmark = pytest.mark.django_db(transaction=True)

PACKAGE = Path(__file__).resolve().parent.parent / "django_taskqueue"


def test_the_class_follows_the_database_unless_a_setting_names_one(taskqueue_settings):
    taskqueue_settings.pop("DATABASE_LAYER", None)
    native = database_class("default")
    assert native.vendor == connection.vendor
    assert issubclass(native, GenericDatabase)
    taskqueue_settings["DATABASE_LAYER"] = "generic"
    assert database_class("default") is GenericDatabase
    assert type(queue_db()) is GenericDatabase
    taskqueue_settings["DATABASE_LAYER"] = "django_taskqueue.db.generic.GenericDatabase"
    assert database_class("default") is GenericDatabase


def test_the_layer_is_made_once_per_alias():
    assert queue_db("default") is queue_db("default") is queue_db()


def test_this_database_is_supported():
    assert queue_db().check_support() is None


def test_no_module_outside_the_layer_checks_the_vendor_or_writes_sql():
    offenders = []
    sql = re.compile(r"\b(SELECT\s.+\sFROM|UPDATE\s+\S+\s+SET|DELETE\s+FROM|INSERT\s+INTO)\s")
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ("db", "migrations"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if "vendor" in code or (sql.search(code) and ('"' in code or "'" in code)):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert offenders == []


class Spy:
    """An execute wrapper that records every statement it sees."""

    def __init__(self):
        self.statements = []

    def __call__(self, execute, sql, params, many, context):
        self.statements.append(sql.split()[0].upper())
        return execute(sql, params, many, context)


def test_every_statement_goes_through_djangos_cursor():
    # Instrumentation that wraps Django's cursor (execute_wrapper, debug toolbar,
    # OpenTelemetry's Django integration) must see the queue's statements.
    db = queue_db()
    claimant = Claimant(uuid7(), timedelta(seconds=60))
    now = timezone.now() + timedelta(seconds=1)
    spy = Spy()
    with connection.execute_wrapper(spy):
        enqueue("tests.record", {"n": 1})
        enqueue("tests.record", {"n": 2}, signature="sig")
        enqueue_many([("tests.record", {"n": n}) for n in range(3, 9)])
        inserts = len(spy.statements)
        tasks = db.claim(claimant, 4, now)
        claims = len(spy.statements) - inserts
        assert db.heartbeat(claimant, [t.pk for t in tasks], now) == 4
        assert db.release(claimant, [tasks[3].pk]) == 1
        results = [Error("again"), Requeue(), Failure("no")]
        report = db.finish(claimant, list(zip(tasks[:3], results, strict=True)), now)
        assert (report.retried, report.requeued, len(report.failed)) == (1, 1, 1)
        more = db.claim(claimant, 1, now)
        report, more = db.acknowledge_and_claim(claimant, [(more[0], Success())], 2, now)
        assert report.deleted == 1
        assert db.recover_stale(claimant.lock_timeout, now).retried == 0
        assert db.cancel("sig") in (0, 1)
    assert inserts >= 3 and claims >= 1
    assert {"INSERT", "UPDATE", "DELETE"} <= set(spy.statements)
    assert len(spy.statements) >= inserts + claims + 6
    assert FailedTask.objects.count() == 1


def test_the_generic_class_runs_a_whole_cycle(taskqueue_settings):
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("the generic class needs SELECT ... FOR UPDATE SKIP LOCKED")
    taskqueue_settings["DATABASE_LAYER"] = "generic"
    db = queue_db()
    assert type(db) is GenericDatabase
    for n in range(5):
        enqueue("tests.record", {"n": n}, priority=5 - n)
    assert enqueue("tests.record", signature="a") is not None
    assert enqueue("tests.record", signature="a") is None
    claimant = Claimant(uuid7(), timedelta(seconds=60))
    now = timezone.now() + timedelta(seconds=1)
    tasks = db.claim(claimant, 3, now)
    assert [t.arguments["n"] for t in tasks] == [4, 3, 2]
    assert all(t.lock_id == claimant.lock_id for t in tasks)
    report, more = db.acknowledge_and_claim(claimant, [(t, Success()) for t in tasks], 10, now)
    assert report.deleted == 3 and len(more) == 3
    assert Task.objects.count() == 3


def _prepared_statements():
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0].split("(")[0].strip() for row in cursor.fetchall()]


def test_enqueue_prepares_only_its_own_statements_and_only_outside_transactions(
    taskqueue_settings,
):
    # A web process's connection keeps its cursor class, and Django's statements are
    # never prepared; only the queue's INSERT is, and only where a transaction-pooling
    # proxy losing it cannot abort the caller's transaction.
    if queue_db().vendor != "postgresql":
        pytest.skip("PostgreSQL's database layer only")
    from django.db import transaction

    connection.close()
    connection.ensure_connection()
    factory = connection.connection.cursor_factory
    with transaction.atomic():
        for n in range(8):
            enqueue("tests.record", {"n": n})
        enqueue_many([("tests.record", {"n": n}) for n in range(8)])
    assert _prepared_statements() == []
    for n in range(8):
        enqueue("tests.record", {"n": n})
    for _ in range(8):
        assert Task.objects.filter(name="tests.record").count() == 24
    assert connection.connection.cursor_factory is factory
    assert _prepared_statements() == ['INSERT INTO "django_taskqueue_task"']
    connection.close()
    taskqueue_settings["PREPARE_STATEMENTS"] = False
    connection.ensure_connection()
    for n in range(8):
        enqueue("tests.record", {"n": n})
    assert _prepared_statements() == []
    connection.close()


def test_enqueue_sends_its_insert_again_when_a_proxy_lost_the_prepared_statement(
    caplog, taskqueue_settings
):
    # taskqueue_settings: a fresh layer before and after, for the "lost" state.
    if queue_db().vendor != "postgresql":
        pytest.skip("PostgreSQL's database layer only")
    caplog.set_level("WARNING", logger="django_taskqueue")
    enqueue("tests.record", {"n": 0})
    assert _prepared_statements() == ['INSERT INTO "django_taskqueue_task"']
    # Behind psycopg's back, as a pooler handing over another server session would.
    connection.connection.pgconn.exec_(b"DEALLOCATE ALL")
    task = enqueue("tests.record", {"n": 1})
    assert Task.objects.filter(pk=task.pk).exists()
    assert "prepared statements do not survive" in caplog.text
    enqueue("tests.record", {"n": 2})
    assert _prepared_statements() == [] and Task.objects.count() == 3


def test_the_django_names_the_layer_relies_on_still_exist():
    # Not underscored, but not documented either: fail loudly if a release moves them.
    from django.db import connections

    wrapper = connections["default"]
    wrapper.ensure_connection()
    assert "health_check_done" in vars(wrapper)  # connections.ThreadConnections
    assert wrapper.atomic_blocks == []  # connections._leave_atomic_blocks
    with wrapper.cursor() as cursor:
        assert cursor.cursor is not None  # CursorWrapper.cursor: the driver's cursor
    if wrapper.vendor == "postgresql":
        import psycopg
        from django.db.backends.postgresql import base, psycopg_any

        assert issubclass(base.ServerBindingCursor, psycopg.Cursor)
        assert issubclass(base.Cursor, psycopg.ClientCursor)
        assert psycopg_any.is_psycopg3 and psycopg_any.Jsonb


def test_a_kept_cursor_never_hides_statements_from_tools_that_come_later(monkeypatch):
    # The layer keeps the thread's cursor between statements; query logging and tools
    # that patch connection.cursor (django-debug-toolbar) must still see the next ones.
    from django.test.utils import CaptureQueriesContext

    enqueue("tests.record", {"n": 0})  # a kept cursor exists now
    with CaptureQueriesContext(connection) as ctx:
        enqueue("tests.record", {"n": 1})
    assert "INSERT" in [q["sql"].split()[0] for q in ctx.captured_queries]
    seen = []
    original = connection.cursor

    def toolbar_cursor(*args, **kwargs):
        seen.append("cursor")
        return original(*args, **kwargs)

    monkeypatch.setattr(connection, "cursor", toolbar_cursor)
    enqueue("tests.record", {"n": 2})
    assert seen
    monkeypatch.undo()
    assert Task.objects.count() == 3
