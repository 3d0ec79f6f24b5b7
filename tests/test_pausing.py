"""Pausing queues: the API and commands, in-process workers on every database layer, and
real worker processes that stop and resume claiming (at once on PostgreSQL)."""

import io
import json
import os
import re
import signal
import time

import pytest
from django.core.management import CommandError, call_command

from django_taskqueue import (
    InvalidTask,
    enqueue,
    pause_queue,
    paused_queues,
    resume_queue,
)
from django_taskqueue.db import queue_db
from django_taskqueue.models import PausedQueue, Task
from django_taskqueue.worker import Worker
from tests.models import Run
from tests.processes import wait_for, worker


def command(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def ran(*tasks):
    return {t.pk for t in tasks if Run.objects.filter(task_id=t.pk).exists()}


@pytest.mark.django_db
def test_pause_and_resume_say_whether_they_changed_anything():
    assert pause_queue("exports", reason="API down") is True
    assert pause_queue("exports") is False
    (paused,) = paused_queues()
    assert (paused.queue, paused.reason) == ("exports", "API down")
    assert resume_queue("exports") is True
    assert resume_queue("exports") is False
    assert paused_queues() == []


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["", "x" * 101, 5])
def test_a_name_no_queue_can_have_is_refused(bad):
    with pytest.raises(InvalidTask, match="queue"):
        pause_queue(bad)
    assert not PausedQueue.objects.exists()


@pytest.mark.django_db
def test_the_commands_pause_resume_and_refuse_bad_arguments():
    assert command("taskqueue_pause", "a", "b", "--reason", "down") == (
        "Paused queue 'a'.\nPaused queue 'b'.\n"
    )
    assert command("taskqueue_pause", "a") == "Queue 'a' was paused already.\n"
    assert set(PausedQueue.objects.values_list("queue", "reason")) == {
        ("a", "down"),
        ("b", "down"),
    }
    assert command("taskqueue_resume", "a") == "Resumed queue 'a'.\n"
    assert command("taskqueue_resume", "--all") == "Resumed queue 'b'.\n"
    assert command("taskqueue_resume", "--all") == "No queue is paused.\n"
    assert command("taskqueue_resume", "c") == "Queue 'c' was not paused.\n"
    with pytest.raises(CommandError, match="name the queues to resume, or give --all"):
        command("taskqueue_resume")
    with pytest.raises(CommandError, match="name the queues to resume, or give --all"):
        command("taskqueue_resume", "a", "--all")
    with pytest.raises(CommandError, match="cannot pause ''"):
        command("taskqueue_pause", "")


@pytest.mark.django_db
def test_status_shows_the_paused_queues():
    pause_queue("exports", reason="API down")
    text = command("taskqueue_status")
    assert re.search(
        r"^Paused: queue 'exports' since \d{4}-\d\d-\d\d [\d:]+ UTC: API down$", text, re.M
    )

    document = json.loads(command("taskqueue_status", "--json"))
    assert [(p["queue"], p["reason"]) for p in document["paused_queues"]] == [
        ("exports", "API down")
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("queues", [None, ["a", "b"]])
def test_a_worker_claims_nothing_from_a_paused_queue(queues):
    a = enqueue("tests.record", {"q": "a"}, queue="a")
    b = enqueue("tests.record", {"q": "b"}, queue="b")
    pause_queue("a")
    Worker(burst=True, listen=False, queues=queues).run()
    assert ran(a, b) == {b.pk}
    assert Task.objects.get(pk=a.pk).lock_id is None  # never claimed
    resume_queue("a")
    Worker(burst=True, listen=False, queues=queues).run()
    assert ran(a, b) == {a.pk, b.pk}


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_queues_are_all_paused_claims_nothing():
    a = enqueue("tests.record", {}, queue="a")
    other = enqueue("tests.record", {}, queue="other")
    pause_queue("a")
    Worker(burst=True, listen=False, queues=["a"]).run()
    assert ran(a, other) == set()
    Worker(burst=True, listen=False).run()
    assert ran(a, other) == {other.pk}


def log_text(path):
    return path.read_text() if path.exists() else ""


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_processes_stop_and_resume_claiming(tmp_path):
    """Two worker processes; a long task of the paused queue finishes."""
    postgres = queue_db().can_listen()
    # Where workers listen (PostgreSQL) the notification must do it: a poll takes 30 s.
    env = {"TASKQUEUE_TEST_POLL_INTERVAL": "30" if postgres else "0.2"}
    long = enqueue("tests.sleep", {"seconds": 2}, queue="a")
    log = tmp_path / "worker.log"
    proc = worker(log, "--processes", "2", **env)
    try:
        wait_for(lambda: ran(long), timeout=60, message="the long task's start")
        pause_queue("a", reason="test")
        wait_for(lambda: log_text(log).count("queue 'a' is paused") == 2, timeout=10)
        started = time.monotonic()
        a = [enqueue("tests.record", {"n": n}, queue="a") for n in range(3)]
        b = enqueue("tests.record", {}, queue="b")
        wait_for(lambda: ran(b), timeout=10, message="the other queue's task")
        # The running task of the paused queue finished.
        wait_for(lambda: Run.objects.filter(name="tests.sleep.done").exists(), timeout=10)
        time.sleep(max(0.0, 1.5 - (time.monotonic() - started)))
        assert ran(*a) == set()
        assert not Task.objects.filter(pk__in=[t.pk for t in a], lock_id__isnull=False).exists()
        resumed = time.monotonic()
        resume_queue("a")
        wait_for(lambda: ran(*a) == {t.pk for t in a}, timeout=10, message="resumed tasks")
        if postgres:
            assert time.monotonic() - resumed < 5  # not the 30-second poll
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log_text(log)
    assert os.path.exists(log)
