"""Behaviours the docs promise that no other test held: a grace that runs out, a
transaction a consumer leaves open, POLL_STORAGE = False, cancel() of a running task,
and errors in the worker's signal receivers."""

import signal
import threading
import time

import pytest
from django.db import transaction
from django.utils import timezone

from django_taskqueue import cancel, consumer, enqueue
from django_taskqueue.models import FailedTask, Task
from django_taskqueue.signals import task_failed, task_finished, task_started
from django_taskqueue.worker import Worker
from tests.models import Run
from tests.processes import wait_for, worker

pytestmark = pytest.mark.django_db(transaction=True)


def burst(**options):
    worker = Worker(**{"workers": 1, "burst": True, "listen": False, **options})
    assert worker.run() == 0
    return worker


@pytest.mark.slow
def test_a_grace_that_runs_out_exits_1_and_the_task_runs_again_after_its_claim(tmp_path):
    task = enqueue("tests.pause", {"seconds": 8})
    log = tmp_path / "worker.log"
    first = worker(log, "--workers", "1", "--grace", "1", TASKQUEUE_TEST_LOCK_TIMEOUT="2")
    wait_for(lambda: Run.objects.filter(task_id=task.pk).exists(), message="the run to start")
    stopped_at = time.monotonic()
    first.send_signal(signal.SIGTERM)
    assert first.wait(30) == 1, log.read_text()
    assert time.monotonic() - stopped_at < 8  # it did not wait for the run
    assert "still running" in log.read_text()
    claimed = Task.objects.get(pk=task.pk)
    assert claimed.lock_id is not None  # still claimed by the stopped worker
    wait_for(lambda: claimed.locked_until < timezone.now(), message="the claim to expire")
    second = worker(log, "--workers", "1", "--burst", TASKQUEUE_TEST_LOCK_TIMEOUT="2")
    assert second.wait(60) == 0, log.read_text()
    assert Run.objects.filter(task_id=task.pk).count() == 2
    assert not Task.objects.exists()


def test_a_transaction_a_consumer_leaves_open_is_rolled_back_and_logged(consumers, caplog):
    @consumer("h.open_transaction")
    def leaves_it_open(args, task):
        transaction.atomic().__enter__()
        Run.objects.create(task_id=task.id, name="inside the open transaction")

    enqueue("h.open_transaction", priority=1)
    after = enqueue("tests.record", {"n": 1}, priority=2)
    burst()
    assert "a consumer left a transaction open" in caplog.text
    # Its write was rolled back; the thread's next task ran on a clean connection.
    assert list(Run.objects.values_list("task_id", flat=True)) == [after.pk]
    assert not Task.objects.exists()


def test_without_poll_storage_a_worker_claims_only_when_woken():
    worker = Worker(workers=1, poll_storage=False, poll_interval=0.05, listen=False)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert worker.started.wait(10)
        time.sleep(0.3)  # its first claim found nothing
        task = enqueue("tests.record", {"n": 1})
        time.sleep(1.0)  # twenty poll intervals
        assert not Run.objects.filter(task_id=task.pk).exists()
        worker.notify()
        wait_for(lambda: Run.objects.filter(task_id=task.pk).exists(), message="the woken run")
    finally:
        worker.stop()
        thread.join(30)


def test_cancel_of_a_running_task_drops_its_outcome(consumers):
    started = threading.Event()
    go_on = threading.Event()

    @consumer("h.cancelled_while_running")
    def runs_until_told(args):
        started.set()
        assert go_on.wait(20)
        raise RuntimeError("this error must not be stored: the task was cancelled")

    task = enqueue("h.cancelled_while_running", signature="running-one")
    thread = threading.Thread(target=burst)
    thread.start()
    assert started.wait(20)
    assert cancel("running-one") == 1
    go_on.set()
    thread.join(30)
    assert not Task.objects.filter(pk=task.pk).exists()
    assert not FailedTask.objects.exists()
    # The signature is free again.
    assert enqueue("tests.record", signature="running-one") is not None


def test_errors_in_the_workers_signal_receivers_are_logged_and_change_nothing(caplog):
    def broken(sender, **kwargs):
        raise ValueError(f"a broken receiver of {kwargs.get('signal')!r}")

    for sig in (task_started, task_finished, task_failed):
        sig.connect(broken)
    try:
        ok = enqueue("tests.record", {"n": 1})
        failing = enqueue("tests.failure")
        burst()
    finally:
        for sig in (task_started, task_finished, task_failed):
            sig.disconnect(broken)
    assert Run.objects.filter(task_id=ok.pk).exists() and not Task.objects.exists()
    assert FailedTask.objects.get().task_id == failing.pk
    for name in ("task_started", "task_finished", "task_failed"):
        assert f"{name} receiver" in caplog.text


def test_a_requeued_copy_carries_over_what_the_docs_say(consumers):
    """concepts.md, "Requeue": a fresh task with the same name, arguments (as the
    consumer left them), priority, signature, queue and retry_max; a new id,
    retry_count 0, due after the delay."""
    from datetime import timedelta

    from django_taskqueue import Requeue

    @consumer("docs.requeue")
    def step(args):
        args["done"] = args.get("done", 0) + 1
        return Requeue(delay_seconds=30)

    original = enqueue(
        "docs.requeue",
        {"done": 0, "batch": "a"},
        priority=3,
        signature="steps:a",
        queue="reports",
        retry_max=2,
    )
    Task.objects.filter(pk=original.pk).update(retry_count=1)  # one failed attempt before
    now = timezone.now()
    from django_taskqueue.signals import task_enqueued

    sent = []

    def receiver(task, **kwargs):
        sent.append(task.pk)

    task_enqueued.connect(receiver)
    try:
        Worker(burst=True, listen=False, workers=1, queues=["reports"], clock=lambda: now).run()
    finally:
        task_enqueued.disconnect(receiver)
    copy = Task.objects.get()
    assert sent == []  # the copy is inserted directly: no task_enqueued
    assert copy.pk != original.pk
    assert (copy.name, copy.arguments) == ("docs.requeue", {"done": 1, "batch": "a"})
    assert (copy.priority, copy.signature, copy.queue, copy.retry_max) == (
        3,
        "steps:a",
        "reports",
        2,
    )
    assert copy.retry_count == 0
    assert copy.created_at == now
    assert copy.start_at == now + timedelta(seconds=30)
