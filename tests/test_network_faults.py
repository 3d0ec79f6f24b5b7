"""Chaos with real worker processes on PostgreSQL: a network that resets or silently
drops a worker's connections (through a proxy on 127.0.0.1), and a worker frozen with
SIGSTOP past LOCK_TIMEOUT. In each, another worker finishes the cut-off worker's tasks,
the cut-off worker carries on once it can, no task is lost, and no late
acknowledgement touches a task another worker owns."""

import signal
import time

import pytest
from django.db import connection

from django_taskqueue import enqueue
from django_taskqueue.db import queue_db
from django_taskqueue.models import FailedTask, Task
from tests.models import Run
from tests.processes import wait_for, worker
from tests.proxy import FaultyProxy

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LOCK_TIMEOUT = "3"


@pytest.fixture(autouse=True)
def postgresql_only():
    if queue_db().vendor != "postgresql":
        pytest.skip("the chaos tests run on PostgreSQL")


@pytest.fixture
def proxy():
    settings = connection.settings_dict
    faulty = FaultyProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))
    yield faulty
    faulty.close()


def runs(task):
    return Run.objects.filter(task_id=task.pk).count()


def started(log, *args, **env):
    return worker(log, "--workers", "2", *args, TASKQUEUE_TEST_LOCK_TIMEOUT=LOCK_TIMEOUT, **env)


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(30)


def test_a_worker_behind_a_black_hole_gives_way_then_carries_on(proxy, tmp_path):
    cut_log, other_log = tmp_path / "cut.log", tmp_path / "other.log"
    task = enqueue("tests.pause", {"seconds": 5})
    cut_off = started(cut_log, TASKQUEUE_TEST_DATABASE_PORT=str(proxy.port))
    other = None
    try:
        wait_for(lambda: runs(task) == 1, message="the first run to start")
        proxy.start_black_hole()
        blackout = time.monotonic()
        # It notices within a bounded time: its next call gets no answer and is cut.
        wait_for(lambda: "got no answer" in cut_log.read_text(), timeout=15, message="the cut")
        assert time.monotonic() - blackout < 10
        # The claim expires; another worker recovers the task and runs it again.
        other = started(other_log)
        wait_for(lambda: runs(task) == 2, timeout=30, message="the rerun")
        proxy.heal()
        wait_for(lambda: not Task.objects.filter(pk=task.pk).exists(), message="the ack")
        stop(other)
        # The cut-off worker reconnects and runs new tasks.
        later = enqueue("tests.record", {"n": 1})
        wait_for(lambda: runs(later) == 1, timeout=30, message="a task after the heal")
        assert Run.objects.get(task_id=later.pk).pid == cut_off.pid
        assert cut_off.poll() is None
    finally:
        proxy.heal()
        assert stop(cut_off) in (0, 1), cut_log.read_text()
        if other is not None:
            stop(other)
    assert runs(task) == 2 and not Task.objects.exists() and not FailedTask.objects.exists()
    # Its own late acknowledgement found the task owned by the other worker, and
    # changed nothing.
    assert "no longer held" in cut_log.read_text() or "lost the claim" in cut_log.read_text()


def test_a_worker_whose_connections_are_reset_reconnects_and_loses_nothing(proxy, tmp_path):
    log = tmp_path / "worker.log"
    process = started(log, TASKQUEUE_TEST_DATABASE_PORT=str(proxy.port))
    try:
        first = enqueue("tests.record", {"n": 1})
        wait_for(lambda: runs(first) == 1, message="the first task")
        proxy.reset()  # while idle
        second = enqueue("tests.record", {"n": 2})
        wait_for(lambda: runs(second) == 1, message="a task after a reset while idle")
        running = enqueue("tests.pause", {"seconds": 2})
        wait_for(lambda: runs(running) == 1, message="a long task to start")
        proxy.reset()  # while running
        wait_for(lambda: not Task.objects.exists(), message="every task acknowledged")
        assert process.poll() is None
    finally:
        assert stop(process) == 0, log.read_text()
    assert runs(running) == 1 and not FailedTask.objects.exists()


def test_a_worker_frozen_past_its_claims_gives_way_when_it_thaws(tmp_path):
    frozen_log, other_log = tmp_path / "frozen.log", tmp_path / "other.log"
    task = enqueue("tests.pause", {"seconds": 6})
    frozen = started(frozen_log)
    other = None
    try:
        wait_for(lambda: runs(task) == 1, message="the first run to start")
        frozen.send_signal(signal.SIGSTOP)
        other = started(other_log)
        wait_for(lambda: runs(task) == 2, timeout=30, message="the rerun by the other worker")
        # Thawed while the other worker still runs it: the frozen worker's run ends,
        # and its acknowledgement must not touch the row the other worker holds.
        frozen.send_signal(signal.SIGCONT)
        wait_for(
            lambda: (
                "no longer held" in frozen_log.read_text()
                or "lost the claim" in frozen_log.read_text()
            ),
            timeout=30,
            message="the thawed worker to find its claim gone",
        )
        row = Task.objects.filter(pk=task.pk).first()
        assert row is None or row.retry_count == 1  # the other worker's claim, untouched
        wait_for(lambda: not Task.objects.filter(pk=task.pk).exists(), message="the ack")
        later = enqueue("tests.record", {"n": 1})
        wait_for(lambda: runs(later) == 1, message="a task after the thaw")
    finally:
        frozen.send_signal(signal.SIGCONT)
        stop(frozen)
        if other is not None:
            stop(other)
    assert runs(task) == 2 and not FailedTask.objects.exists()
