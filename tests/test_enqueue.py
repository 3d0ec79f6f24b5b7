from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_taskqueue import TaskRejected, cancel, enqueue, enqueue_many
from django_taskqueue.db import queue_db
from django_taskqueue.models import Task
from django_taskqueue.signals import task_enqueued

pytestmark = pytest.mark.django_db


def test_enqueue_stores_a_row_with_defaults():
    before = timezone.now()
    task = enqueue("tests.record", {"image_id": 7})
    row = Task.objects.get(pk=task.pk)
    assert row.name == "tests.record"
    assert row.arguments == {"image_id": 7}
    assert row.priority == 16
    assert row.retry_max == 8
    assert row.retry_count == 0
    assert row.signature is None
    assert row.queue == "default"
    assert row.lock_id is None and row.locked_until is None
    assert before <= row.created_at <= row.start_at <= timezone.now()
    assert row.error == ""


def test_defaults_come_from_settings(taskqueue_settings):
    taskqueue_settings.update(DEFAULT_PRIORITY=3, DEFAULT_RETRY_MAX=0)
    task = enqueue("tests.record")
    assert (task.priority, task.retry_max) == (3, 0)


def test_options_are_stored():
    task = enqueue("tests.record", {}, priority=-5, retry_max=2, signature="s1", queue="images")
    row = Task.objects.get(pk=task.pk)
    assert (row.priority, row.retry_max, row.signature, row.queue) == (-5, 2, "s1", "images")


def test_delays_add_up():
    before = timezone.now()
    task = enqueue("tests.record", delay_seconds=30, delay_minutes=2, delay_hours=1)
    expected = timedelta(hours=1, minutes=2, seconds=30)
    assert before + expected <= task.start_at <= timezone.now() + expected


def test_start_time():
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    task = enqueue("tests.record", start_time=when)
    assert Task.objects.get(pk=task.pk).start_at == when


def test_enqueue_is_one_query():
    with CaptureQueriesContext(connection) as ctx:
        enqueue("tests.record", {"a": 1})
    assert len(ctx.captured_queries) == 1
    with CaptureQueriesContext(connection) as ctx:
        enqueue("tests.record", {"a": 1}, signature="one-query")
    # The ORM's insert-or-ignore does not say whether it stored the row: one SELECT.
    assert len(ctx.captured_queries) == (2 if queue_db().vendor == "generic" else 1)


def test_enqueue_goes_through_execute_wrappers_and_keeps_its_values():
    # The one-row INSERT may take a faster cursor than Django's default; database
    # instrumentation (execute_wrapper) must still see it, and every value must
    # arrive as given.
    seen = []

    def spy(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    when = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    arguments = {"text": "naïve ' quote", "n": 2**40, "x": 1.5, "nested": [None, True]}
    with connection.execute_wrapper(spy):
        task = enqueue(
            "tests.record", arguments, priority=-7, retry_max=3, signature="s", start_time=when
        )
    assert seen[0].startswith("INSERT")
    assert len(seen) == (2 if queue_db().vendor == "generic" else 1)
    stored = Task.objects.get(pk=task.pk)
    assert stored.arguments == arguments
    assert (stored.priority, stored.retry_max, stored.signature) == (-7, 3, "s")
    assert stored.start_at == when
    assert stored.created_at == task.created_at
    assert (stored.lock_id, stored.locked_until, stored.retry_count) == (None, None, 0)


def test_enqueue_is_seen_by_libraries_that_patch_cursor_wrapper(monkeypatch):
    # Error trackers and APM agents patch CursorWrapper.execute to time queries; the
    # INSERT must go through it then, though it skips the wrapper when nothing looks.
    from django.db.backends.utils import CursorWrapper

    seen = []
    original = CursorWrapper.execute

    def patched(self, sql, params=None):
        seen.append(sql)
        return original(self, sql, params)

    monkeypatch.setattr(CursorWrapper, "execute", patched)
    task = enqueue("tests.record", {"n": 1})
    assert [sql for sql in seen if sql.startswith("INSERT")]
    assert Task.objects.filter(pk=task.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_database_error_in_enqueue_is_djangos_and_breaks_the_callers_transaction():
    from django.db import IntegrityError
    from django.db.transaction import TransactionManagementError

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL: transactional ALTER TABLE ... ADD CONSTRAINT")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE django_taskqueue_task ADD CONSTRAINT test_no_name_x "
                "CHECK (priority <> 5)"
            )
        # A constraint the database enforces: the error is translated as Django's own
        # cursors translate it, and the transaction must be rolled back, as after any
        # failed query inside atomic().
        with pytest.raises(IntegrityError):
            enqueue("tests.record", priority=5)
        assert connection.needs_rollback
        with pytest.raises(TransactionManagementError):
            Task.objects.count()
        transaction.set_rollback(True)
    # The constraint was rolled back with the transaction.
    assert enqueue("tests.record", priority=5) is not None


@pytest.mark.parametrize("with_receiver", [False, True])
def test_enqueued_tasks_are_complete_unsaved_then_saved_instances(with_receiver):
    # enqueue() builds its instance without Model.__init__ unless an init signal
    # listens; either way it is the instance the ORM would have made.
    from django.db.models.signals import post_init

    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.name)

    if with_receiver:
        post_init.connect(receiver, sender=Task)
    try:
        task = enqueue("tests.record", {"n": 1}, priority=3, signature="complete")
    finally:
        post_init.disconnect(receiver, sender=Task)
    assert seen == (["tests.record"] if with_receiver else [])
    assert task._state.adding is False and task._state.db == "default"
    stored = Task.objects.get(pk=task.pk)
    for field in Task._meta.concrete_fields:
        assert getattr(task, field.attname) == getattr(stored, field.attname), field.name
    task.error = "edited"
    task.save(update_fields=["error"])
    assert Task.objects.get(pk=task.pk).error == "edited"


def test_enqueue_many_keeps_every_value():
    # enqueue_many() may build its multi-row INSERT itself; every value of every row
    # must arrive as given, also next to a row whose signature is already queued.
    enqueue("tests.record", signature="taken")
    when = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    first = {"text": "naïve ' quote", "n": 2**40, "x": 1.5, "nested": [None, True]}
    stored = enqueue_many(
        [
            {"name": "tests.record", "arguments": first, "priority": -7, "start_time": when},
            {"name": "tests.record", "signature": "taken"},
            {"name": "tests.noop", "retry_max": 3, "signature": "s", "queue": "emails"},
        ]
    )
    assert [t.name for t in stored] == ["tests.record", "tests.noop"]
    rows = {row.pk: row for row in Task.objects.filter(pk__in=[t.pk for t in stored])}
    for task in stored:
        row = rows[task.pk]
        for field in Task._meta.concrete_fields:
            assert getattr(row, field.attname) == getattr(task, field.attname), field.name
    assert rows[stored[0].pk].arguments == first
    assert rows[stored[0].pk].start_at == when


def test_tuples_in_arguments_are_stored_as_lists():
    single = enqueue("tests.record", {"pair": (1, 2), "deep": [{"t": ("a",)}]})
    [bulk] = enqueue_many([("tests.record", {"pair": (3, 4)})])
    assert Task.objects.get(pk=single.pk).arguments == {"pair": [1, 2], "deep": [{"t": ["a"]}]}
    assert Task.objects.get(pk=bulk.pk).arguments == {"pair": [3, 4]}


def test_signature_dedupe_drops_the_second():
    first = enqueue("tests.record", {"n": 1}, signature="sig")
    second = enqueue("tests.record", {"n": 2}, signature="sig")
    assert first is not None
    assert second is None
    assert list(Task.objects.values_list("arguments", flat=True)) == [{"n": 1}]


def test_signature_dedupe_also_against_a_running_task():
    from tests.factories import TaskFactory

    TaskFactory(signature="busy", running=True)
    assert enqueue("tests.record", signature="busy") is None
    assert Task.objects.count() == 1


def test_cancel_by_signature():
    enqueue("tests.record", signature="a")
    enqueue("tests.record", signature="b")
    assert cancel("a") == 1
    assert cancel("a") == 0
    assert list(Task.objects.values_list("signature", flat=True)) == ["b"]
    # After cancel the signature is free again.
    assert enqueue("tests.record", signature="a") is not None


@pytest.mark.django_db(transaction=True)
def test_enqueue_joins_the_callers_transaction():
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        enqueue("tests.record", {"n": 1})
        assert Task.objects.count() == 1
        raise Boom
    assert Task.objects.count() == 0
    with transaction.atomic():
        enqueue("tests.record", {"n": 2})
    assert Task.objects.count() == 1


def test_fail_silently_logs_and_returns_none(caplog):
    assert enqueue("", fail_silently=True) is None
    assert enqueue("tests.record", {"x": {1, 2}}, fail_silently=True) is None
    assert Task.objects.count() == 0
    assert "enqueue('') failed" in caplog.text


REFUSE = {
    "postgresql": (
        [
            "CREATE FUNCTION test_refuse_priority_5() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN IF NEW.priority = 5 THEN RAISE EXCEPTION 'refused by a test trigger'; "
            "END IF; RETURN NEW; END $$",
            "CREATE TRIGGER test_refuse BEFORE INSERT ON django_taskqueue_task "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_priority_5()",
        ],
        [
            "DROP TRIGGER IF EXISTS test_refuse ON django_taskqueue_task",
            "DROP FUNCTION IF EXISTS test_refuse_priority_5()",
        ],
    ),
    "sqlite": (
        [
            "CREATE TRIGGER test_refuse BEFORE INSERT ON django_taskqueue_task "
            "WHEN NEW.priority = 5 BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END"
        ],
        ["DROP TRIGGER IF EXISTS test_refuse"],
    ),
    "mysql": (
        [
            "CREATE TRIGGER test_refuse BEFORE INSERT ON django_taskqueue_task FOR EACH ROW "
            "BEGIN IF NEW.priority = 5 THEN SIGNAL SQLSTATE '45000' "
            "SET MESSAGE_TEXT = 'refused by a test trigger'; END IF; END"
        ],
        ["DROP TRIGGER IF EXISTS test_refuse"],
    ),
}


@pytest.fixture
def refuse_priority_5():
    """A trigger that makes the database itself refuse tasks of priority 5."""
    create, drop = REFUSE[connection.vendor]
    with connection.cursor() as cursor:
        for sql in create:
            cursor.execute(sql)
    yield
    with connection.cursor() as cursor:
        for sql in drop:
            cursor.execute(sql)


@pytest.mark.django_db(transaction=True)
def test_fail_silently_swallows_a_database_error_and_keeps_the_transaction(
    refuse_priority_5, caplog
):
    from django.db import DatabaseError

    with transaction.atomic():
        first = enqueue("tests.record", {"n": 1})
        assert enqueue("tests.record", {"n": 2}, priority=5, fail_silently=True) is None
        # Still usable: the failed INSERT was rolled back to enqueue()'s savepoint.
        third = enqueue("tests.record", {"n": 3})
    assert set(Task.objects.values_list("pk", flat=True)) == {first.pk, third.pk}
    assert "failed; the task was not queued" in caplog.text
    assert "refused by a test trigger" in caplog.text
    with pytest.raises(DatabaseError, match="refused by a test trigger"):
        enqueue("tests.record", priority=5)


@pytest.mark.django_db(transaction=True)
def test_fail_silently_inside_atomic_keeps_the_transaction_usable():
    with transaction.atomic():
        enqueue("tests.record", {"n": 1}, signature="dup")
        assert enqueue("tests.record", {"n": 2}, signature="dup", fail_silently=True) is None
        enqueue("tests.record", {"n": 3})
    assert Task.objects.count() == 2


def test_task_enqueued_signal():
    seen = []

    def receiver(sender, task, **kwargs):
        seen.append(task.pk)

    task_enqueued.connect(receiver)
    try:
        task = enqueue("tests.record")
        enqueue("tests.record", signature="x")
        enqueue("tests.record", signature="x")  # dropped: no signal
    finally:
        task_enqueued.disconnect(receiver)
    assert len(seen) == 2 and seen[0] == task.pk


def test_task_enqueued_reaches_a_receiver_connected_for_the_task_model():
    seen = []

    def receiver(sender, task, **kwargs):
        seen.append((sender, task.pk))

    task_enqueued.connect(receiver, sender=Task)
    try:
        one = enqueue("tests.record")
        [two] = enqueue_many([("tests.record", {})])
    finally:
        task_enqueued.disconnect(receiver, sender=Task)
    assert seen == [(Task, one.pk), (Task, two.pk)]


def upper_name_arguments(task):
    task.arguments = {k.upper(): v for k, v in task.arguments.items()}
    task.priority = 1


def reject_secret(task):
    if "secret" in task.arguments:
        raise ValueError("no secrets in the queue")


def test_preprocessor_changes_the_task(taskqueue_settings):
    taskqueue_settings["PREPROCESSORS"] = ["tests.test_enqueue.upper_name_arguments"]
    task = enqueue("tests.record", {"a": 1})
    row = Task.objects.get(pk=task.pk)
    assert row.arguments == {"A": 1}
    assert row.priority == 1


def test_preprocessor_rejects_the_task(taskqueue_settings):
    taskqueue_settings["PREPROCESSORS"] = ["tests.test_enqueue.reject_secret"]
    with pytest.raises(TaskRejected, match="no secrets in the queue") as info:
        enqueue("tests.record", {"secret": 1})
    assert isinstance(info.value.__cause__, ValueError)
    assert Task.objects.count() == 0
    assert enqueue("tests.record", {"fine": 1}) is not None


def test_enqueue_many_stores_in_one_statement():
    with CaptureQueriesContext(connection) as ctx:
        stored = enqueue_many(
            [("tests.record", {"n": i}) for i in range(50)]
            + [{"name": "tests.record", "arguments": {"n": 50}, "priority": 2}],
            priority=5,
        )
    assert len(ctx.captured_queries) == 1
    assert len(stored) == 51
    assert Task.objects.count() == 51
    assert Task.objects.filter(priority=5).count() == 50
    assert Task.objects.get(priority=2).arguments == {"n": 50}


def test_enqueue_many_dedupes_signatures():
    enqueue("tests.record", signature="old")
    stored = enqueue_many(
        [
            {"name": "tests.record", "signature": "old"},
            {"name": "tests.record", "signature": "new"},
            {"name": "tests.record", "signature": "new"},
            ("tests.record", {}),
        ]
    )
    assert sorted(t.signature or "" for t in stored) == ["", "new"]
    assert Task.objects.count() == 3


def test_enqueue_many_is_all_or_nothing_on_bad_input():
    from django_taskqueue import InvalidTask

    with pytest.raises(InvalidTask, match="task #1"):
        enqueue_many([("tests.record", {}), ("tests.record", {"bad": object()})])
    assert Task.objects.count() == 0


def test_enqueue_many_large_batches(db):
    stored = enqueue_many([("tests.record", {"n": i}) for i in range(5000)])
    assert len(stored) == 5000
    assert Task.objects.count() == 5000


def test_using_the_queue_without_the_app_installed_explains_the_fix(settings):
    from django_taskqueue import NotReady

    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "django_taskqueue"]
    with pytest.raises(NotReady, match='add "django_taskqueue" to INSTALLED_APPS'):
        enqueue("tests.record")


def test_a_failing_task_enqueued_receiver_is_logged_not_raised(caplog):
    def broken(sender, task, **kwargs):
        raise RuntimeError("receiver bug")

    task_enqueued.connect(broken)
    try:
        task = enqueue("tests.record")
    finally:
        task_enqueued.disconnect(broken)
    assert Task.objects.filter(pk=task.pk).exists()
    assert "receiver bug" in caplog.text


def test_the_task_fields_keep_the_order_build_task_passes_them_in():
    # build_task() constructs Task positionally: a new or moved field must update it.
    assert [f.attname for f in Task._meta.concrete_fields] == [
        "name",
        "arguments",
        "priority",
        "signature",
        "queue",
        "created_at",
        "start_at",
        "lock_id",
        "locked_until",
        "retry_count",
        "retry_max",
        "error",
        "id",
    ]


def test_an_unknown_name_lists_the_users_task_names_only():
    from django_taskqueue import UnknownTaskName
    from django_taskqueue.constants import FRAMEWORK_TASK

    with pytest.raises(UnknownTaskName) as caught:
        enqueue("tests.no_such_name")
    message = str(caught.value)
    assert "tests.record" in message
    assert FRAMEWORK_TASK not in message
