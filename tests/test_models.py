from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from django_taskqueue.models import FailedTask, Task, TaskState, uuid7
from tests.factories import FailedTaskFactory, TaskFactory


@pytest.mark.django_db
def test_migrations_match_the_models():
    out = StringIO()
    call_command("makemigrations", "django_taskqueue", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_uuid7_is_time_ordered_and_versioned():
    ids = [uuid7() for _ in range(200)]
    assert all(u.version == 7 for u in ids)
    assert len(set(ids)) == 200
    stamps = [u.int >> 80 for u in ids]
    assert stamps == sorted(stamps)


@pytest.mark.django_db
def test_states():
    ready = TaskFactory()
    scheduled = TaskFactory(scheduled=True)
    running = TaskFactory(running=True)
    stale = TaskFactory(stale=True)
    now = timezone.now()
    assert ready.state(now) == TaskState.READY
    assert scheduled.state(now) == TaskState.SCHEDULED
    assert running.state(now) == TaskState.RUNNING
    assert stale.state(now) == TaskState.STALE
    for task in (ready, scheduled, running, stale):
        assert list(Task.objects.in_state(task.state(now), now)) == [task]


@pytest.mark.django_db
def test_ready_orders_by_priority_then_start_at():
    now = timezone.now()
    late_urgent = TaskFactory(priority=1, start_at=now - timedelta(seconds=1))
    early_urgent = TaskFactory(priority=1, start_at=now - timedelta(seconds=5))
    normal = TaskFactory(priority=16, start_at=now - timedelta(seconds=60))
    TaskFactory(priority=0, scheduled=True)
    TaskFactory(priority=0, running=True)
    assert list(Task.objects.ready(now)) == [early_urgent, late_urgent, normal]


@pytest.mark.django_db
def test_signature_is_unique_in_the_database():
    TaskFactory(signature="one")
    with pytest.raises(IntegrityError), transaction.atomic():
        TaskFactory(signature="one")
    TaskFactory(signature=None)
    TaskFactory(signature=None)
    assert Task.objects.count() == 3


@pytest.mark.django_db
def test_priority_range_is_a_database_constraint():
    # SQLite enforces the named check; PostgreSQL and MariaDB refuse the smallint overflow.
    with pytest.raises((IntegrityError, DataError)), transaction.atomic():
        Task.objects.bulk_create([Task(name="x", priority=-40000)])


@pytest.mark.django_db
def test_str_and_error_summary():
    task = TaskFactory(name="resize", error="Traceback...\n  File x\nValueError: bad width\n")
    assert str(task) == f"resize ({task.id})"
    assert task.error_summary == "ValueError: bad width"
    failed = FailedTaskFactory(name="resize")
    assert str(failed) == f"resize ({failed.task_id}) failed"


@pytest.mark.django_db
def test_failed_task_copies_every_field():
    task = TaskFactory(
        name="n", arguments={"a": 1}, priority=3, signature="s", retry_count=2, queue="q"
    )
    failed = FailedTask.from_task(task, "final error")
    failed.save()
    failed.refresh_from_db()
    assert failed.task_id == task.id
    for field in (
        "name",
        "arguments",
        "priority",
        "signature",
        "retry_count",
        "queue",
        "created_at",
        "start_at",
        "retry_max",
    ):
        assert getattr(failed, field) == getattr(task, field), field
    assert failed.error == "final error"


@pytest.mark.django_db
def test_named_indexes_exist():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Task._meta.db_table)
    names = set(constraints)
    assert {"taskqueue_task_locked_idx", "taskqueue_task_signature_uniq"} <= names
    if connection.features.supports_partial_indexes:
        assert "taskqueue_task_ready_idx" in names
