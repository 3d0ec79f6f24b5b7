"""The backend for Django's tasks framework, driven through the framework's own API."""

import time
import uuid
from datetime import timedelta

import django
import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from django_taskqueue.apps import framework_available

if not framework_available():  # pragma: no cover - Django 5.2 without the backport
    pytest.skip("Django's tasks framework is not installed", allow_module_level=True)

from django_taskqueue import enqueue
from django_taskqueue.admin import _retry
from django_taskqueue.backends import TaskQueueBackend
from django_taskqueue.checks import check_backend
from django_taskqueue.constants import FRAMEWORK_TASK
from django_taskqueue.framework import (
    InvalidFrameworkTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    framework_signals,
    task_backends,
)
from django_taskqueue.models import FailedTask, ResultStatus, Task, TaskResultRecord
from django_taskqueue.worker import Worker
from tests import framework_tasks as tasks
from tests.models import Run
from tests.processes import run_python

if django.VERSION >= (6, 0):
    from django.tasks.exceptions import TaskResultMismatch
else:
    from django_tasks.exceptions import TaskResultMismatch

pytestmark = pytest.mark.django_db(transaction=True)


def burst(**kwargs):
    options = {"workers": 1, "burst": True, "listen": False, "grace": 5}
    worker = Worker(**{**options, **kwargs})
    assert worker.run() == 0
    return worker


def at(moment):
    return lambda: moment


def test_backend_declares_every_feature():
    backend = task_backends["default"]
    assert isinstance(backend, TaskQueueBackend)
    assert backend.supports_defer
    assert backend.supports_priority
    assert backend.supports_async_task
    assert backend.supports_get_result


def test_enqueue_stores_one_queue_task_and_returns_a_ready_result():
    result = tasks.add.enqueue(2, b=3)
    assert result.status == TaskResultStatus.READY
    assert not result.is_finished
    assert (result.args, result.kwargs) == ([2], {"b": 3})
    assert result.backend == "default"
    row = Task.objects.get()
    assert str(row.pk) == result.id
    assert row.name == FRAMEWORK_TASK
    assert row.queue == "default"
    assert row.priority == 16  # the framework's default 0 is our DEFAULT_PRIORITY
    assert row.retry_max == 0  # OPTIONS["RETRY_MAX"] in the test settings
    assert row.arguments["path"] == "tests.framework_tasks.add"
    assert result.enqueued_at == row.created_at
    # Nothing is recorded until a worker starts it.
    assert not TaskResultRecord.objects.exists()
    with pytest.raises(ValueError, match="not finished"):
        _ = result.return_value


def test_enqueue_joins_the_callers_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.add.enqueue(1, 2)
        raise RuntimeError("rolled back")
    assert not Task.objects.exists()


def test_get_result_before_and_after_the_run():
    result = tasks.add.enqueue(2, 3)
    before = tasks.add.get_result(result.id)
    assert before.status == TaskResultStatus.READY
    assert before.args == [2, 3]
    assert before.worker_ids == []
    worker = burst()
    assert not Task.objects.exists()
    after = task_backends["default"].get_result(result.id)
    assert after.status == TaskResultStatus.SUCCESSFUL
    assert after.return_value == 5
    assert after.worker_ids == [str(worker.lock_id)]
    assert after.attempts == 1
    assert after.errors == []
    assert after.started_at <= after.finished_at
    assert after.last_attempted_at == after.started_at
    assert after.enqueued_at == result.enqueued_at
    assert after.task.func is tasks.add.func
    # refresh() updates the result the caller holds.
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5


def test_get_result_while_running_and_of_unknown_ids():
    result = tasks.add.enqueue(1, 1)
    Task.objects.update(lock_id=uuid.uuid4(), locked_until=timezone.now() + timedelta(minutes=5))
    assert tasks.add.get_result(result.id).status == TaskResultStatus.RUNNING
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        with pytest.raises(TaskResultDoesNotExist):
            task_backends["default"].get_result(bad)
    with pytest.raises(TaskResultMismatch):
        tasks.fail.get_result(result.id)


def test_native_tasks_have_no_framework_result():
    task = enqueue("tests.record", {"n": 1})
    burst()
    assert not TaskResultRecord.objects.exists()
    with pytest.raises(TaskResultDoesNotExist):
        task_backends["default"].get_result(str(task.pk))


def test_run_after_defers_the_task():
    later = timezone.now() + timedelta(hours=1)
    result = tasks.add.using(run_after=later).enqueue(1, 2)
    assert Task.objects.get().start_at == later
    assert burst().processed == 0
    assert tasks.add.get_result(result.id).status == TaskResultStatus.READY
    burst(clock=at(later + timedelta(seconds=1)))
    done = tasks.add.get_result(result.id)
    assert done.status == TaskResultStatus.SUCCESSFUL
    assert done.task.run_after == later


def test_higher_framework_priority_runs_first():
    tasks.record.using(priority=-50).enqueue("low")
    tasks.record.enqueue("default")
    tasks.record.using(priority=100).enqueue("urgent")
    tasks.record.using(priority=10).enqueue("high")
    assert sorted(Task.objects.values_list("priority", flat=True)) == [-84, 6, 16, 66]
    burst()
    assert list(Run.objects.order_by("id").values_list("name", flat=True)) == [
        "urgent",
        "high",
        "default",
        "low",
    ]


def test_priority_reported_back_is_the_frameworks():
    result = tasks.add.using(priority=-7).enqueue(1, 1)
    assert tasks.add.get_result(result.id).task.priority == -7
    burst()
    assert tasks.add.get_result(result.id).task.priority == -7


def test_async_task():
    result = tasks.async_multiply.enqueue(6, 7)
    burst()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 42


def test_context_is_passed_when_the_task_takes_it():
    result = tasks.with_context.enqueue("x")
    burst()
    result.refresh()
    assert result.return_value == {
        "id": result.id,
        "attempt": 1,
        "status": str(TaskResultStatus.RUNNING),
        "value": "x",
    }


def test_failure_records_exception_class_and_traceback():
    result = tasks.fail.enqueue("boom")
    burst()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.is_finished
    [error] = result.errors
    assert error.exception_class_path == "builtins.ValueError"
    assert error.exception_class is ValueError
    assert "Traceback (most recent call last)" in error.traceback
    assert "ValueError: boom" in error.traceback
    assert result.finished_at is not None
    with pytest.raises(ValueError, match="failed"):
        _ = result.return_value
    # Our failure log has it too, under the task's id.
    failed = FailedTask.objects.get()
    assert str(failed.task_id) == result.id
    assert "ValueError: boom" in failed.error


def test_unserialisable_return_value_fails_the_task():
    result = tasks.unserialisable.enqueue()
    burst()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "builtins.TypeError"


@pytest.mark.parametrize(
    ("framework_task", "message"),
    [
        ("not_a_number", "the return value is nan, which JSON cannot represent"),
        ("too_big", "the return value takes 2097154 bytes as JSON; the limit is 1048576"),
    ],
)
def test_a_return_value_that_cannot_be_stored_fails_the_task_without_a_rerun(
    framework_task, message
):
    result = getattr(tasks, framework_task).enqueue()
    burst()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert TaskResultRecord.objects.get(pk=result.id).return_value is None
    assert message in result.errors[-1].traceback
    assert message in FailedTask.objects.get().error
    # retry_max=3 for too_big: not run again all the same.
    assert Run.objects.count() == 1 and not Task.objects.exists()


def test_retries_apply_to_framework_tasks():
    result = tasks.fail_twice.enqueue("again")
    assert Task.objects.get().retry_max == 1  # @task(retry_max=1) beats OPTIONS
    burst()
    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert len(result.errors) == 1
    row = Task.objects.get()
    assert row.retry_count == 1
    burst(clock=at(row.start_at))
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert len(result.errors) == 2
    assert result.attempts == 2
    assert "gave up after 2 attempts" in FailedTask.objects.get().error


def test_retry_max_per_call_with_using():
    tasks.add.using(retry_max=5).enqueue(1, 2)
    assert Task.objects.get().retry_max == 5
    with pytest.raises(InvalidFrameworkTask, match="retry_max"):
        tasks.add.using(retry_max=-1)


def test_a_failure_retried_from_the_admin_is_ready_again_and_can_succeed():
    result = tasks.flaky.enqueue()
    burst()
    result.refresh()
    assert result.status == TaskResultStatus.FAILED
    assert _retry(FailedTask.objects.all(), timezone.now())[2:] == (1, False)
    assert Task.objects.get().pk == uuid.UUID(result.id)
    result.refresh()
    assert result.status == TaskResultStatus.READY
    burst()
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 2
    assert len(result.errors) == 1
    assert result.attempts == 2


def test_a_task_lost_with_its_worker_reads_as_failed():
    result = tasks.add.enqueue(1, 2)
    row = Task.objects.get()
    FailedTask.from_task(row, "the claim on this task expired").save()
    row.delete()
    failed = tasks.add.get_result(result.id)
    assert failed.status == TaskResultStatus.FAILED
    assert "claim on this task expired" in failed.errors[0].traceback


def test_framework_signals():
    seen = []

    def on_enqueued(sender, task_result, **kwargs):
        seen.append(("enqueued", sender, task_result.status))

    def on_started(sender, task_result, **kwargs):
        seen.append(("started", sender, task_result.status))

    def on_finished(sender, task_result, **kwargs):
        seen.append(("finished", sender, task_result.status))

    framework_signals.task_enqueued.connect(on_enqueued)
    framework_signals.task_started.connect(on_started)
    framework_signals.task_finished.connect(on_finished)
    try:
        tasks.add.enqueue(1, 2)
        burst()
        tasks.fail.enqueue("signalled")
        burst()
    finally:
        framework_signals.task_enqueued.disconnect(on_enqueued)
        framework_signals.task_started.disconnect(on_started)
        framework_signals.task_finished.disconnect(on_finished)
    assert seen == [
        ("enqueued", TaskQueueBackend, TaskResultStatus.READY),
        ("started", TaskQueueBackend, TaskResultStatus.RUNNING),
        ("finished", TaskQueueBackend, TaskResultStatus.SUCCESSFUL),
        ("enqueued", TaskQueueBackend, TaskResultStatus.READY),
        ("started", TaskQueueBackend, TaskResultStatus.RUNNING),
        ("finished", TaskQueueBackend, TaskResultStatus.FAILED),
    ]


def test_queue_name_and_worker_queue_filter():
    email = tasks.send_email.enqueue("a@example.com")
    report = tasks.record.using(queue_name="reports").enqueue("report")
    plain = tasks.record.enqueue("plain")
    assert Task.objects.get(pk=email.id).queue == "emails"
    burst(queues=["emails"])
    assert tasks.send_email.get_result(email.id).status == TaskResultStatus.SUCCESSFUL
    assert tasks.record.get_result(report.id).status == TaskResultStatus.READY
    burst(queues=["reports", "default"])
    assert tasks.record.get_result(report.id).status == TaskResultStatus.SUCCESSFUL
    assert tasks.record.get_result(plain.id).status == TaskResultStatus.SUCCESSFUL


def test_enqueue_validates_as_the_framework_requires():
    with pytest.raises(InvalidFrameworkTask, match="Queue 'nowhere'"):
        tasks.add.using(queue_name="nowhere")
    with pytest.raises(InvalidFrameworkTask, match="aware"):
        tasks.add.using(run_after=timezone.now().replace(tzinfo=None))
    with pytest.raises(InvalidFrameworkTask, match="priority"):
        tasks.add.using(priority=101)
    with pytest.raises(TypeError):
        tasks.add.enqueue(object(), 1)
    with pytest.raises(InvalidFrameworkTask, match="nan"):
        tasks.add.enqueue(float("nan"), 1)
    assert not Task.objects.exists()


def test_old_finished_results_are_pruned(taskqueue_settings, capsys):
    taskqueue_settings["RESULT_TTL"] = 3600
    results = [tasks.add.enqueue(n, n) for n in range(3)]
    burst()
    old = timezone.now() - timedelta(hours=2)
    TaskResultRecord.objects.filter(pk__in=[r.id for r in results[:2]]).update(finished_at=old)
    # A result whose task was queued again is kept whatever its age.
    Task.objects.create(id=results[1].id, name=FRAMEWORK_TASK, arguments={})
    call_command("taskqueue_prune_results", "--dry-run")
    assert "Would delete 1 task result(s)" in capsys.readouterr().out
    assert TaskResultRecord.objects.count() == 3
    call_command("taskqueue_prune_results")
    assert "Deleted 1 task result(s)" in capsys.readouterr().out
    assert set(TaskResultRecord.objects.values_list("pk", flat=True)) == {
        uuid.UUID(results[1].id),
        uuid.UUID(results[2].id),
    }
    TaskResultRecord.objects.update(finished_at=timezone.now() - timedelta(seconds=10))
    call_command("taskqueue_prune_results", "--older-than", "5")
    assert TaskResultRecord.objects.get().pk == uuid.UUID(results[1].id)


def test_worker_prunes_now_and_then(taskqueue_settings, monkeypatch):
    from django_taskqueue import retention

    monkeypatch.setattr(retention, "_pruned_at", {})
    taskqueue_settings["RESULT_TTL"] = 60
    first = tasks.add.enqueue(1, 1)
    burst()
    TaskResultRecord.objects.update(finished_at=timezone.now() - timedelta(hours=1))
    monkeypatch.setattr(retention, "_pruned_at", {})
    second = tasks.add.enqueue(2, 2)
    burst()
    # The worker prunes in a thread of its own.
    deadline = time.monotonic() + 30
    while TaskResultRecord.objects.count() != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert list(TaskResultRecord.objects.values_list("pk", flat=True)) == [uuid.UUID(second.id)]
    with pytest.raises(TaskResultDoesNotExist):
        tasks.add.get_result(first.id)


def test_record_status_values_match_the_frameworks():
    assert {s.value for s in ResultStatus} == {s.value for s in TaskResultStatus}


def ids(messages):
    return [m.id for m in messages]


def test_backend_checks(settings):
    assert list(task_backends["default"].check()) == []
    assert ids(check_backend("x", [], ["default"])) == ["django_taskqueue.E020"]
    assert ids(check_backend("x", {"RETRIES": 1}, ["default"])) == ["django_taskqueue.E027"]
    for bad in (-1, "3", True, None):
        assert ids(check_backend("x", {"RETRY_MAX": bad}, [])) == ["django_taskqueue.E021"]
    assert ids(check_backend("x", {"DATABASE": "no_such_alias"}, [])) == ["django_taskqueue.E022"]
    assert ids(check_backend("x", {}, ["", "q" * 101, 5])) == ["django_taskqueue.E023"] * 3


def test_backend_checks_run_with_manage_py_check(settings):
    from django.core.management.base import SystemCheckError

    settings.TASKS = {
        "default": {
            "BACKEND": "django_taskqueue.backends.TaskQueueBackend",
            "OPTIONS": {"RETRY_MAX": -1},
        }
    }
    with pytest.raises(SystemCheckError, match="E021"):
        call_command("check")


def test_async_enqueue_and_get_result():
    from asgiref.sync import async_to_sync

    result = async_to_sync(tasks.add.aenqueue)(1, 2)
    burst()
    assert async_to_sync(tasks.add.aget_result)(result.id).return_value == 3


@pytest.mark.slow
def test_a_process_imports_the_framework_only_to_run_a_framework_task():
    # Every worker process registers the framework's consumer, but imports the
    # framework glue (and, through it, the framework) only when such a task runs.
    proc = run_python(
        "import sys\n"
        "import django_taskqueue.worker\n"
        "from django_taskqueue.constants import FRAMEWORK_TASK\n"
        "from django_taskqueue.registry import registry\n"
        "assert registry.consumers_for(FRAMEWORK_TASK), 'no consumer'\n"
        "print('django_taskqueue.framework' in sys.modules)\n"
        "print('django_taskqueue.framework_consumer' in sys.modules)\n"
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.split() == ["False", "False"]


def test_a_paused_queue_pauses_framework_tasks_too():
    from django_taskqueue import pause_queue, resume_queue

    paused = tasks.add.using(queue_name="emails").enqueue(1, 2)
    other = tasks.add.using(queue_name="reports").enqueue(3, 4)
    pause_queue("emails")
    burst()
    paused.refresh()
    other.refresh()
    assert (paused.status, other.status) == ("READY", "SUCCESSFUL")
    resume_queue("emails")
    burst()
    paused.refresh()
    assert (paused.status, paused.return_value) == ("SUCCESSFUL", 3)
