"""taskqueue_retry and taskqueue_cancel on the test database, and the admin's retry
action, which shares retry's function."""

import io
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_taskqueue.apps import framework_available
from django_taskqueue.constants import FRAMEWORK_TASK
from django_taskqueue.models import FailedTask, ResultStatus, Task, TaskResultRecord, uuid7
from django_taskqueue.operations import CANCELLED
from tests.factories import FailedTaskFactory, TaskFactory
from tests.processes import ROOT, django_env

needs_framework = pytest.mark.skipif(
    not framework_available(), reason="Django's tasks framework is not installed"
)


def command(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def framework_payload(path="tests.framework_tasks.add"):
    return {"path": path, "args": [1, 2], "kwargs": {}, "backend": "default", "priority": 0}


def result_record(pk, status, **values):
    return TaskResultRecord.objects.create(
        id=pk, task_path="tests.framework_tasks.add", backend="default", status=status, **values
    )


def pages(ctx, size):
    return [q["sql"] for q in ctx.captured_queries if f"LIMIT {size}" in q["sql"]]


# Retry ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_retry_by_id_puts_the_task_back_with_a_fresh_start():
    created = timezone.now() - timedelta(days=1)
    failed = FailedTaskFactory(
        arguments={"n": 1},
        priority=3,
        signature="sig-1",
        queue="mail",
        retry_max=4,
        retry_count=5,
        created_at=created,
        start_at=created,
        lock_id=uuid7(),
        locked_until=created,
    )
    other = FailedTaskFactory()
    before = timezone.now()
    assert command("taskqueue_retry", "--id", str(failed.task_id)) == "Retried 1 failed task.\n"
    task = Task.objects.get()
    assert task.pk == failed.task_id
    assert (task.name, task.arguments, task.priority, task.signature, task.queue) == (
        "tests.record",
        {"n": 1},
        3,
        "sig-1",
        "mail",
    )
    assert (task.retry_count, task.retry_max, task.lock_id, task.locked_until) == (0, 4, None, None)
    assert before <= task.start_at <= timezone.now()
    assert list(FailedTask.objects.all()) == [other]


@pytest.mark.django_db
def test_an_id_no_failure_has_retries_nothing():
    failed = FailedTaskFactory()
    assert command("taskqueue_retry", "--id", str(uuid7())) == "Retried 0 failed tasks.\n"
    assert FailedTask.objects.get() == failed
    assert not Task.objects.exists()


@pytest.mark.django_db
def test_retry_by_name_matches_task_names_and_framework_paths():
    plain = FailedTaskFactory(name="tests.a")
    FailedTaskFactory(name="tests.b")
    add = FailedTaskFactory(name=FRAMEWORK_TASK, arguments=framework_payload())
    FailedTaskFactory(
        name=FRAMEWORK_TASK, arguments=framework_payload("tests.framework_tasks.flaky")
    )
    out = command("taskqueue_retry", "--name", "tests.a", "--name", "tests.framework_tasks.add")
    assert out == "Retried 2 failed tasks.\n"
    assert set(Task.objects.values_list("pk", flat=True)) == {plain.task_id, add.task_id}
    assert set(FailedTask.objects.values_list("name", flat=True)) == {"tests.b", FRAMEWORK_TASK}


@pytest.mark.django_db
def test_retry_all_narrowed_by_queue_and_time():
    now = timezone.now()
    inside = FailedTaskFactory(queue="mail", failed_at=now - timedelta(hours=2))
    FailedTaskFactory(queue="mail", failed_at=now - timedelta(days=2))  # too early
    FailedTaskFactory(queue="mail", failed_at=now)  # too late
    FailedTaskFactory(queue="default", failed_at=now - timedelta(hours=2))  # other queue
    after = (now - timedelta(hours=3)).isoformat()
    before = (now - timedelta(hours=1)).isoformat()
    args = ["--all", "--queue", "mail", "--failed-after", after, "--failed-before", before]
    out = command("taskqueue_retry", *args)
    assert out == "Retried 1 failed task.\n"
    assert Task.objects.get().pk == inside.task_id
    assert FailedTask.objects.count() == 3


@pytest.mark.django_db
def test_retry_all_in_batches_moves_everything_with_a_bounded_number_of_queries():
    FailedTask.objects.bulk_create(FailedTaskFactory.build_batch(120))
    with CaptureQueriesContext(connection) as ctx:
        out = command("taskqueue_retry", "--all", "--batch-size", "50")
    assert out == "Retried 120 failed tasks.\n"
    assert Task.objects.count() == 120 and not FailedTask.objects.exists()
    assert len(pages(ctx, 50)) == 4  # three batches, and the empty page that ends them
    # A few statements per batch (select, check, insert, delete, savepoints), not per row.
    assert len(ctx.captured_queries) <= 4 * 10


@pytest.mark.django_db
def test_dry_run_counts_and_changes_nothing():
    TaskFactory(signature="taken")
    FailedTaskFactory.create_batch(2)
    FailedTaskFactory(signature="taken")
    queued = TaskFactory()
    FailedTaskFactory(task_id=queued.pk)
    tasks = set(Task.objects.values_list("pk", "start_at"))
    failures = set(FailedTask.objects.values_list("pk", flat=True))
    out = command("taskqueue_retry", "--all", "--dry-run")
    assert out == (
        "Would retry 2 failed tasks (2 skipped: 1 signature already queued, "
        "1 task already queued).\n"
    )
    assert set(Task.objects.values_list("pk", "start_at")) == tasks
    assert set(FailedTask.objects.values_list("pk", flat=True)) == failures


@pytest.mark.django_db
def test_a_signature_already_queued_is_not_duplicated_and_its_failure_stays():
    TaskFactory(signature="report-7")
    clash = FailedTaskFactory(signature="report-7")
    free = FailedTaskFactory(signature="report-8")
    out = command("taskqueue_retry", "--all")
    assert out == "Retried 1 failed task (1 skipped: signature already queued).\n"
    assert list(FailedTask.objects.all()) == [clash]
    assert Task.objects.filter(signature="report-7").count() == 1
    assert Task.objects.filter(pk=free.task_id).exists()


@pytest.mark.django_db
def test_a_task_queued_again_already_is_skipped():
    queued = TaskFactory()
    again = FailedTaskFactory(task_id=queued.pk)
    assert command("taskqueue_retry", "--all") == (
        "Retried 0 failed tasks (1 skipped: task already queued).\n"
    )
    assert list(FailedTask.objects.all()) == [again]


@pytest.mark.django_db
def test_retried_framework_results_are_ready_again():
    now = timezone.now()
    error = {"exception_class_path": "builtins.RuntimeError", "traceback": "boom"}
    picked = FailedTaskFactory(name=FRAMEWORK_TASK, arguments=framework_payload())
    left = FailedTaskFactory(name=FRAMEWORK_TASK, arguments=framework_payload(), queue="other")
    result_record(picked.task_id, ResultStatus.FAILED, finished_at=now, errors=[error])
    result_record(left.task_id, ResultStatus.FAILED, finished_at=now, errors=[error])
    command("taskqueue_retry", "--all", "--queue", "default")
    picked_record = TaskResultRecord.objects.get(pk=picked.task_id)
    assert (picked_record.status, picked_record.finished_at) == (ResultStatus.READY, None)
    assert picked_record.errors == [error]  # the attempts so far stay on record
    assert TaskResultRecord.objects.get(pk=left.task_id).status == ResultStatus.FAILED


@pytest.mark.django_db
def test_the_admin_retry_action_resets_framework_results_too(admin_client):
    failed = FailedTaskFactory(name=FRAMEWORK_TASK, arguments=framework_payload())
    result_record(failed.task_id, ResultStatus.FAILED, finished_at=timezone.now())
    data = {"action": "retry", "index": 0, ACTION_CHECKBOX_NAME: [str(failed.pk)]}
    admin_client.post(reverse("admin:django_taskqueue_failedtask_changelist"), data)
    assert Task.objects.get().pk == failed.task_id
    assert TaskResultRecord.objects.get().status == ResultStatus.READY


@needs_framework
@pytest.mark.django_db(transaction=True)
def test_a_framework_task_retried_from_the_command_line_runs_again():
    from django_taskqueue.framework import TaskResultStatus
    from django_taskqueue.worker import Worker
    from tests import framework_tasks

    result = framework_tasks.flaky.enqueue()
    assert Worker(workers=1, burst=True, listen=False, grace=5).run() == 0
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert command("taskqueue_retry", "--name", "tests.framework_tasks.flaky") == (
        "Retried 1 failed task.\n"
    )
    assert TaskResultRecord.objects.get().status == ResultStatus.READY
    assert Worker(workers=1, burst=True, listen=False, grace=5).run() == 0
    result.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 2)


# Cancel --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cancel_by_id_leaves_running_tasks_and_counts_what_it_did_not_find():
    ready, scheduled, stale = TaskFactory(), TaskFactory(scheduled=True), TaskFactory(stale=True)
    running = TaskFactory(running=True)
    kept = TaskFactory()
    ids = [str(t.pk) for t in (ready, scheduled, stale, running)] + [str(uuid7())]
    out = command("taskqueue_cancel", *[arg for pk in ids for arg in ("--id", pk)])
    assert out == "Cancelled 3 queued tasks (1 not cancelled: running; 1 not found).\n"
    assert set(Task.objects.all()) == {running, kept}


@pytest.mark.django_db
def test_cancel_by_signature():
    TaskFactory(signature="a")
    running = TaskFactory(signature="b", running=True)
    kept = TaskFactory(signature="d")
    out = command("taskqueue_cancel", "--signature", "a", "--signature", "b", "--signature", "c")
    assert out == "Cancelled 1 queued task (1 not cancelled: running; 1 not found).\n"
    assert set(Task.objects.all()) == {running, kept}


@pytest.mark.django_db
def test_cancel_all_matching_in_batches():
    Task.objects.bulk_create(TaskFactory.build_batch(120, name="tests.x", queue="q"))
    running = TaskFactory.create_batch(2, name="tests.x", queue="q", running=True)
    other_queue = TaskFactory(name="tests.x", queue="r")
    other_name = TaskFactory(name="tests.y", queue="q")
    framework = TaskFactory(name=FRAMEWORK_TASK, arguments=framework_payload("tests.x"), queue="q")
    args = ["taskqueue_cancel", "--all-matching", "--name", "tests.x", "--queue", "q"]
    with CaptureQueriesContext(connection) as ctx:
        out = command(*args, "--batch-size", "50")
    assert out == "Cancelled 121 queued tasks (2 not cancelled: running).\n"
    assert set(Task.objects.all()) == {*running, other_queue, other_name}
    assert not Task.objects.filter(pk=framework.pk).exists()
    assert len(pages(ctx, 50)) == 4  # three batches, and the empty page that ends them
    assert len(ctx.captured_queries) <= 4 * 10


@pytest.mark.django_db
def test_cancel_dry_run_counts_and_changes_nothing():
    TaskFactory.create_batch(3, queue="q")
    TaskFactory(queue="q", running=True)
    TaskFactory(signature="s")
    before = set(Task.objects.values_list("pk", flat=True))
    assert command("taskqueue_cancel", "--all-matching", "--queue", "q", "--dry-run") == (
        "Would cancel 3 queued tasks (1 not cancelled: running).\n"
    )
    assert command("taskqueue_cancel", "--signature", "s", "--dry-run") == (
        "Would cancel 1 queued task.\n"
    )
    assert set(Task.objects.values_list("pk", flat=True)) == before


@pytest.mark.django_db
def test_cancelled_framework_tasks_have_failed_results():
    waiting = TaskFactory(name=FRAMEWORK_TASK, arguments=framework_payload())
    never_ran = TaskFactory(name=FRAMEWORK_TASK, arguments=framework_payload())
    running = TaskFactory(name=FRAMEWORK_TASK, arguments=framework_payload(), running=True)
    result_record(waiting.pk, ResultStatus.READY, errors=[{"traceback": "attempt 1"}])
    result_record(running.pk, ResultStatus.RUNNING)
    ids = [str(t.pk) for t in (waiting, never_ran, running)]
    out = command("taskqueue_cancel", *[arg for pk in ids for arg in ("--id", pk)])
    assert out == "Cancelled 2 queued tasks (1 not cancelled: running).\n"
    for task in (waiting, never_ran):
        record = TaskResultRecord.objects.get(pk=task.pk)
        assert record.status == ResultStatus.FAILED and record.finished_at is not None
        assert record.errors[-1]["traceback"] == CANCELLED
    assert len(TaskResultRecord.objects.get(pk=waiting.pk).errors) == 2
    assert TaskResultRecord.objects.get(pk=running.pk).status == ResultStatus.RUNNING


@needs_framework
@pytest.mark.django_db
def test_get_result_of_a_cancelled_framework_task_is_failed():
    from django_taskqueue.framework import TaskResultStatus, task_backends
    from tests import framework_tasks

    result = framework_tasks.add.enqueue(1, 2)
    assert command("taskqueue_cancel", "--id", result.id) == "Cancelled 1 queued task.\n"
    fetched = task_backends["default"].get_result(result.id)
    assert fetched.status == TaskResultStatus.FAILED
    assert fetched.errors[-1].traceback == CANCELLED


# Bad arguments -------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["taskqueue_retry"], "say what to retry: --id UUID, --name NAME or --all"),
        (["taskqueue_retry", "--queue", "q"], "say what to retry"),
        (["taskqueue_retry", "--all", "--name", "x"], "give one of --id, --name and --all"),
        (["taskqueue_retry", "--id", "nope"], "'nope' is not a task id"),
        (["taskqueue_retry", "--all", "--failed-after", "yesterday"], "'yesterday' is not an ISO"),
        (
            [
                "taskqueue_retry",
                "--all",
                "--failed-after",
                "2026-12-03",
                "--failed-before",
                "2026-12-02",
            ],
            "--failed-after must be earlier than --failed-before",
        ),
        (["taskqueue_retry", "--all", "--database", "nowhere"], "'nowhere' is not in settings"),
        (["taskqueue_retry", "--all", "--batch-size", "0"], "'0' must be at least 1"),
        (["taskqueue_cancel"], "say what to cancel"),
        (["taskqueue_cancel", "--name", "x"], "add --all-matching"),
        (["taskqueue_cancel", "--all-matching", "--id", str(uuid.UUID(int=1))], "not with --id"),
        (["taskqueue_cancel", "--id", "12"], "'12' is not a task id"),
        (["taskqueue_cancel", "--signature", ""], "--signature: signature must not be empty"),
        (["taskqueue_cancel", "--all-matching", "--database", "nowhere"], "'nowhere' is not in"),
    ],
)
def test_bad_arguments_are_refused_and_change_nothing(args, message):
    FailedTaskFactory()
    task = TaskFactory()
    with pytest.raises(CommandError, match=message):
        command(*args)
    assert FailedTask.objects.count() == 1
    assert list(Task.objects.all()) == [task]


@pytest.mark.django_db
def test_a_valid_signature_is_not_cancelled_when_another_is_invalid():
    task = TaskFactory(signature="fine")
    with pytest.raises(CommandError, match="signature"):
        command("taskqueue_cancel", "--signature", "fine", "--signature", "x" * 300)
    assert list(Task.objects.all()) == [task]


# A transaction of its own: the command's process must be able to write (SQLite).
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        (["taskqueue_retry"], 1, "CommandError: say what to retry"),
        (["taskqueue_retry", "--id", "nope"], 2, "argument --id: 'nope' is not a task id"),
        (["taskqueue_cancel", "--id", str(uuid.UUID(int=1))], 0, ""),
    ],
)
def test_exit_codes_on_the_command_line(args, code, error):
    proc = subprocess.run(
        [sys.executable, "-m", "django", *args],
        env=django_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == code, proc.stderr
    assert error in proc.stderr
