"""No task can wedge or crash the worker: poisoned outcomes and BaseExceptions."""

import asyncio
import threading

import pytest

from django_taskqueue import Error, Requeue, consumer, enqueue
from django_taskqueue.constants import ERROR_MAX_LENGTH
from django_taskqueue.db import queue_db
from django_taskqueue.models import FailedTask, Task
from django_taskqueue.signals import task_finished, task_started
from django_taskqueue.worker import Worker, executor
from tests.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def burst(**options):
    """A burst run that must end within a minute (a wedged worker never would)."""
    worker = Worker(**{"workers": 4, "burst": True, "listen": False, "grace": 5, **options})
    codes = []
    thread = threading.Thread(target=lambda: codes.append(worker.run()))
    thread.start()
    thread.join(60)
    if thread.is_alive():
        worker.stop()
        thread.join(30)
        pytest.fail("the burst run did not end: the worker is wedged")
    assert codes == [0]
    return worker


def raising(message):
    def run(args, task):
        raise RuntimeError(message)

    return run


def changing_arguments(value, outcome):
    def run(args, task):
        args["x"] = value
        return outcome

    return run


def requeue_with(delay):
    def run(args, task):
        return Requeue(delay_seconds=delay)

    return run


def test_poisoned_outcomes_fail_one_task_each_and_the_batch_goes_on(consumers, caplog):
    caplog.set_level("WARNING", logger="django_taskqueue")
    huge = "x" * 3_000_000 + "THE END"
    poisons = {
        "h.nul": raising("a \x00 byte"),
        "h.surrogate": raising("a lone \ud800 surrogate"),
        "h.emoji": raising("four bytes \U0001f600"),
        "h.megabytes": raising(huge),
        "h.set_then_error": changing_arguments({1, 2}, Error("again")),
        "h.nan_then_error": changing_arguments(float("nan"), Error("again")),
        "h.oversized_then_error": changing_arguments("y" * 2_000_000, Error("again")),
        "h.set_then_requeue": changing_arguments({1, 2}, Requeue()),
        "h.nan_then_requeue": changing_arguments(float("nan"), Requeue()),
        "h.oversized_then_requeue": changing_arguments("y" * 2_000_000, Requeue()),
        "h.requeue_inf": requeue_with(float("inf")),
        "h.requeue_nan": requeue_with(float("nan")),
        "h.requeue_negative": requeue_with(-1),
        "h.requeue_absurd": requeue_with(10**12),
    }
    for name, function in poisons.items():
        consumer(name)(function)
    good = [enqueue("tests.record", {"n": n}, priority=5) for n in range(6)]
    tasks = {name: enqueue(name, {"original": True}, priority=5) for name in poisons}

    burst()

    assert Run.objects.count() == len(good)
    assert not Task.objects.filter(lock_id__isnull=False).exists()
    assert not Task.objects.filter(pk__in=[t.pk for t in good]).exists()

    def retried(name):
        row = Task.objects.get(pk=tasks[name].pk)
        assert row.retry_count == 1
        return row.error

    assert "a \\x00 byte" in retried("h.nul")
    assert "a lone \\ud800 surrogate" in retried("h.surrogate")
    assert "four bytes \U0001f600" in retried("h.emoji")
    megabytes = retried("h.megabytes")
    assert len(megabytes) <= ERROR_MAX_LENGTH and megabytes.rstrip().endswith("THE END")
    assert "characters of this text were cut" in megabytes
    assert "must be finite, not inf" in retried("h.requeue_inf")
    assert "must be finite, not nan" in retried("h.requeue_nan")
    assert "must not be negative" in retried("h.requeue_negative")
    assert "must be at most" in retried("h.requeue_absurd")

    def failed(name):
        row = FailedTask.objects.get(task_id=tasks[name].pk)
        assert row.arguments == {"original": True}  # as stored, not as the run left it
        assert "could not be stored" in row.error
        return row.error

    for outcome in ("error", "requeue"):
        assert "arguments['x'] is a set" in failed(f"h.set_then_{outcome}")
        assert "arguments['x'] is nan" in failed(f"h.nan_then_{outcome}")
        assert "bytes as JSON; the limit is" in failed(f"h.oversized_then_{outcome}")
    assert FailedTask.objects.count() == 6
    assert "storing them one by one" in caplog.text


def test_an_outcome_the_database_itself_refuses_fails_only_that_task(consumers):
    @consumer("h.long_queue")
    def long_queue(args, task):
        if args.pop("copy", False):
            Run.objects.create(task_id=task.id, name="copy", arguments=args)
            return None
        args["copy"] = True
        task.queue = "q" * 200  # the column holds 100
        return Requeue()

    refused = enqueue("h.long_queue", {"n": 1}, priority=5)
    others = [enqueue("tests.record", {"n": n}, priority=5) for n in range(4)]
    burst()
    if queue_db().vendor == "sqlite":
        # SQLite does not enforce a column's length: the copy was stored, and ran.
        assert Run.objects.filter(name="copy").count() == 1
        assert Run.objects.count() == len(others) + 1 and not FailedTask.objects.exists()
        return
    assert Run.objects.count() == len(others)
    failed = FailedTask.objects.get(task_id=refused.pk)
    assert failed.queue == "default" and "could not be stored" in failed.error
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    "exception",
    [asyncio.CancelledError, KeyboardInterrupt, GeneratorExit, SystemExit],
)
def test_a_base_exception_from_a_consumer_is_an_error_and_the_worker_goes_on(consumers, exception):
    @consumer("h.base")
    def base(args):
        raise exception("from the consumer")

    bad = enqueue("h.base", priority=5)
    good = [enqueue("tests.record", {"n": n}, priority=6) for n in range(5)]
    burst(workers=1)
    row = Task.objects.get(pk=bad.pk)
    assert row.retry_count == 1 and exception.__name__ in row.error
    assert Run.objects.count() == len(good)


def test_base_exceptions_from_signal_receivers_are_logged_and_tasks_finish(caplog):
    def on_start(sender, task, **kwargs):
        raise KeyboardInterrupt("from task_started")

    def on_finish(sender, task, result, **kwargs):
        raise asyncio.CancelledError("from task_finished")

    task_started.connect(on_start)
    task_finished.connect(on_finish)
    try:
        for n in range(5):
            enqueue("tests.record", {"n": n})
        burst(workers=1)
    finally:
        task_started.disconnect(on_start)
        task_finished.disconnect(on_finish)
    assert Run.objects.count() == 5 and not Task.objects.exists()
    assert "from task_started" in caplog.text and "from task_finished" in caplog.text


class ThreadKiller(BaseException):
    """Not an Exception: nothing in the executor's loop is meant to catch it."""


def test_a_dead_executor_thread_settles_its_task_and_is_replaced(monkeypatch, caplog):
    caplog.set_level("ERROR", logger="django_taskqueue")
    original = executor.ThreadConnections.start_of_task
    killed = []
    lock = threading.Lock()

    def start_of_task(self):
        with lock:
            if not killed:
                killed.append(threading.get_ident())
                raise ThreadKiller("the executor thread is gone")
        original(self)

    monkeypatch.setattr(executor.ThreadConnections, "start_of_task", start_of_task)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # expected death
    tasks = [enqueue("tests.record", {"n": n}, priority=n) for n in range(6)]
    # One thread: only a replacement can run the other five.
    burst(workers=1, lock_timeout=2)
    first = Task.objects.get(pk=tasks[0].pk)
    assert first.retry_count == 1
    assert "executor thread running this task died" in first.error
    assert Run.objects.count() == 5
    assert "died; starting another" in caplog.text


def test_the_in_process_pool_turns_a_base_exception_into_an_error(
    consumers, taskqueue_settings, monkeypatch
):
    from django_taskqueue import immediate

    taskqueue_settings.update(RUN_IMMEDIATE_PRIORITY=5, RUN_IMMEDIATE_WORKERS=1)
    fresh = immediate.ImmediatePool()
    monkeypatch.setattr(immediate, "pool", fresh)

    @consumer("h.cancelled")
    def cancelled(args):
        raise asyncio.CancelledError("from an in-process run")

    enqueue("h.cancelled", priority=1)
    enqueue("tests.record", {"n": 1}, priority=1)
    fresh.join()
    row = Task.objects.get(name="h.cancelled")
    assert row.retry_count == 1 and "CancelledError" in row.error
    assert Run.objects.count() == 1
