"""Nothing grows without bound: the failure log and framework results are pruned,
results left behind by killed workers are repaired, and bulk retries work in batches."""

import time
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_taskqueue import Requeue, consumer, enqueue, retention
from django_taskqueue.admin.failed import RETRY_BATCH, _retry
from django_taskqueue.models import FailedTask, ResultStatus, Task, TaskResultRecord
from django_taskqueue.worker import Worker
from tests.factories import FailedTaskFactory

pytestmark = pytest.mark.django_db(transaction=True)

DAY = 24 * 3600


def failures(count, age_days):
    at = timezone.now() - timedelta(days=age_days)
    return FailedTask.objects.bulk_create(FailedTaskFactory.build_batch(count, failed_at=at))


def test_the_failure_log_is_pruned_after_its_retention(taskqueue_settings, capsys):
    failures(3, age_days=40)
    kept = failures(2, age_days=10)
    call_command("taskqueue_prune", "--dry-run")
    assert "Would delete 3 failed task(s)" in capsys.readouterr().out
    assert FailedTask.objects.count() == 5
    call_command("taskqueue_prune")
    assert "Deleted 3 failed task(s)" in capsys.readouterr().out
    assert set(FailedTask.objects.values_list("pk", flat=True)) == {f.pk for f in kept}
    call_command("taskqueue_prune", "--failed-older-than", str(5 * DAY))
    assert not FailedTask.objects.exists()


def test_a_retention_of_none_keeps_the_failure_log(taskqueue_settings):
    taskqueue_settings["FAILED_TASK_RETENTION"] = None
    failures(2, age_days=400)
    assert retention.prune_failed("default") == 0
    assert FailedTask.objects.count() == 2


def test_a_worker_prunes_in_a_thread_of_its_own(taskqueue_settings, monkeypatch):
    monkeypatch.setattr(retention, "_pruned_at", {})
    failures(1200, age_days=31)  # more than one batch
    failures(1, age_days=1)
    Worker(workers=1, burst=True, listen=False).run()
    deadline = time.monotonic() + 30
    while FailedTask.objects.count() != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def record(status, *, attempted_days_ago, **values):
    at = timezone.now() - timedelta(days=attempted_days_ago)
    return TaskResultRecord.objects.create(
        id=values.pop("id", None) or uuid.uuid4(),
        task_path="tests.framework_tasks.add",
        backend="default",
        status=status,
        enqueued_at=at,
        last_attempted_at=at,
        **values,
    )


def test_results_left_behind_by_killed_workers_are_repaired():
    now = timezone.now()
    # RUNNING, but its task is back in the queue (its worker died, the claim expired).
    back = record(ResultStatus.RUNNING, attempted_days_ago=1)
    Task.objects.create(id=back.pk, name="tests.record", arguments={}, start_at=now, created_at=now)
    # RUNNING, and its task went to the failure log after its last claim expired.
    failed = record(ResultStatus.RUNNING, attempted_days_ago=1)
    FailedTaskFactory(task_id=failed.pk, error="the claim on this task expired")
    # READY, and its task is gone (cancelled).
    gone = record(ResultStatus.READY, attempted_days_ago=1)
    # Left alone: a run that started a moment ago, and one whose task is claimed.
    fresh = record(ResultStatus.RUNNING, attempted_days_ago=0)
    claimed = record(ResultStatus.RUNNING, attempted_days_ago=1)
    Task.objects.create(
        id=claimed.pk,
        name="tests.record",
        arguments={},
        start_at=now,
        created_at=now,
        lock_id=uuid.uuid4(),
        locked_until=now + timedelta(minutes=5),
    )
    assert retention.repair_results("default", dry_run=True) == 3
    assert retention.repair_results("default") == 3

    def status(result):
        result.refresh_from_db()
        return result.status

    assert status(back) == ResultStatus.READY
    assert status(failed) == ResultStatus.FAILED
    assert failed.errors[-1]["traceback"] == "the claim on this task expired"
    assert status(gone) == ResultStatus.FAILED and "left the queue" in gone.errors[-1]["traceback"]
    assert status(fresh) == ResultStatus.RUNNING
    assert status(claimed) == ResultStatus.RUNNING
    assert retention.repair_results("default") == 0


def test_retrying_more_failures_than_a_batch_locks_a_batch_at_a_time():
    failures(RETRY_BATCH * 2 + 500, age_days=1)
    with CaptureQueriesContext(connection) as ctx:
        selected, tried, stored, conflict = _retry(FailedTask.objects.all(), timezone.now())
    assert (selected, tried, stored, conflict) == (2500, 2500, 2500, False)
    assert Task.objects.count() == 2500 and not FailedTask.objects.exists()
    pages = [q["sql"] for q in ctx.captured_queries if f"LIMIT {RETRY_BATCH}" in q["sql"]]
    assert len(pages) == 4  # three batches, and the empty page that ends it
    if connection.features.has_select_for_update:
        assert all("FOR UPDATE" in sql for sql in pages)


def test_a_requeue_dropped_by_a_signature_conflict_is_logged(consumers, caplog):
    caplog.set_level("WARNING", logger="django_taskqueue")

    @consumer("h.steal")
    def steal(args, task):
        task.signature = "taken"  # another queued task has it
        return Requeue()

    enqueue("tests.record", {"n": 1}, signature="taken", delay_seconds=3600)
    stealer = enqueue("h.steal")
    Worker(workers=1, burst=True, listen=False).run()
    assert f"task {stealer.pk} (h.steal) returned Requeue, but its copy was dropped" in caplog.text
    assert list(Task.objects.values_list("signature", flat=True)) == ["taken"]


def test_the_wait_after_a_database_outage_never_outlasts_a_heartbeat():
    worker = Worker(lock_timeout=8, listen=False)
    delays = [worker.outage_delay(failures) for failures in range(1, 12)]
    assert delays[:3] == [0.5, 1.0, 2.0]  # it backs off
    assert max(delays) == worker.heartbeat_interval == 2.0
    assert Worker(lock_timeout=600, listen=False).outage_delay(20) == 30.0
