"""RUN_IMMEDIATE_PRIORITY's in-process pool, and async_delay_ms."""

import threading
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from django_taskqueue import enqueue, immediate
from django_taskqueue.models import FailedTask, Task
from tests.models import Run
from tests.processes import run_python

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pool(taskqueue_settings, monkeypatch):
    taskqueue_settings.update(RUN_IMMEDIATE_PRIORITY=5, RUN_IMMEDIATE_WORKERS=2)
    fresh = immediate.ImmediatePool()
    monkeypatch.setattr(immediate, "pool", fresh)
    yield fresh
    fresh.join()


def test_urgent_task_runs_in_process_after_commit_and_is_not_stored(pool):
    with transaction.atomic():
        task = enqueue("tests.record", {"n": 1}, priority=5)
        assert task.pk is not None
        pool.join(1)
        assert not Run.objects.exists()  # not before the commit
    pool.join()
    assert Run.objects.get().task_id == task.pk
    assert not Task.objects.exists()


def test_rolled_back_urgent_task_never_runs(pool):
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("tests.record", priority=1)
        raise RuntimeError
    pool.join()
    assert not Run.objects.exists()


def test_signed_delayed_or_lower_priority_tasks_are_stored(pool):
    enqueue("tests.record", priority=5, signature="s")
    enqueue("tests.record", priority=5, delay_seconds=60)
    enqueue("tests.record", priority=6)
    pool.join()
    assert Task.objects.count() == 3
    assert not Run.objects.exists()


def test_an_error_in_process_is_stored_for_retry(pool):
    task = enqueue("tests.raise", {"message": "later"}, priority=0)
    pool.join()
    row = Task.objects.get(pk=task.pk)
    assert row.retry_count == 1
    assert "ValueError: later" in row.error


def test_a_failure_in_process_goes_to_the_failure_log(pool):
    task = enqueue("tests.failure", priority=0)
    pool.join()
    assert FailedTask.objects.get().task_id == task.pk


def test_full_pool_falls_back_to_storing(pool, taskqueue_settings):
    taskqueue_settings.update(RUN_IMMEDIATE_WORKERS=1, BUFFER_SIZE=1)
    tasks = [enqueue("tests.pause", {"seconds": 0.5}, priority=0) for _ in range(4)]
    pool.join()
    stored = set(Task.objects.values_list("pk", flat=True))
    ran = set(Run.objects.values_list("task_id", flat=True))
    assert stored and ran
    assert stored | ran == {t.pk for t in tasks}
    assert not stored & ran


def test_async_delay_stores_the_task_in_the_callers_transaction_due_after_the_delay():
    from django.db.backends.signals import connection_created

    opened = []
    connection_created.connect(opened.append)
    threads = threading.active_count()
    try:
        with transaction.atomic():
            tasks = [enqueue("tests.record", {"n": n}, async_delay_ms=1500) for n in range(5)]
            assert Task.objects.count() == 5  # stored already, visible at commit
    finally:
        connection_created.disconnect(opened.append)
    assert opened == [] and threading.active_count() == threads
    for task in tasks:
        row = Task.objects.get(pk=task.pk)
        assert row.start_at - row.created_at == timedelta(milliseconds=1500)
    # Not due yet: a worker does not take them before the delay.
    assert not Task.objects.ready(timezone.now()).exists()


def test_async_delay_in_a_rolled_back_transaction_stores_nothing():
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("tests.record", async_delay_ms=50)
        raise RuntimeError
    assert not Task.objects.exists()


@pytest.mark.slow
def test_a_process_that_exits_right_after_an_async_delay_enqueue_loses_nothing():
    child = run_python(
        "from django_taskqueue import enqueue\n"
        "task = enqueue('tests.record', {'n': 1}, async_delay_ms=60000)\n"
        "print(task.pk)\n"
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    row = Task.objects.get(pk=out.strip())
    assert row.start_at - row.created_at == timedelta(seconds=60)


def test_an_in_process_retry_stores_the_arguments_the_consumer_changed(pool):
    # The arguments were encoded once when enqueued; the stored retry must be encoded
    # from what the consumer left, not from that first text.
    enqueue("tests.step_then_raise", {"position": 0}, priority=1)
    pool.join()
    stored = Task.objects.get()
    assert stored.arguments == {"position": 1}
    assert stored.retry_count == 1
