"""The supervisor (``--processes N``) as a real process: its pause when children keep
dying, a second signal, and SIGINT."""

import os
import re
import signal
import time

import pytest

from django_taskqueue import enqueue
from tests.models import Run
from tests.processes import wait_for, worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

STARTED = re.compile(r"started worker process \d+ \(pid (\d+)\)")


def log_text(path):
    return path.read_text() if path.exists() else ""


def child_pids(path):
    return [int(pid) for pid in STARTED.findall(log_text(path))]


def alive(pid):
    """Running: a zombie (exited, not yet reaped) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_children_that_keep_dying_make_the_supervisor_pause(tmp_path):
    # Every child exits with code 7 as soon as it loads the settings.
    log = tmp_path / "worker.log"
    proc = worker(log, "--processes", "1", TASKQUEUE_TEST_CHILDREN_EXIT="7")
    try:
        wait_for(
            lambda: "keep dying; waiting before restarting" in log_text(log),
            timeout=60,
            message=f"the pause; log so far:\n{log_text(log)}",
        )
        paused_at = time.monotonic()
        text = log_text(log)
        started = len(STARTED.findall(text))
        # More than three deaths per process within ten seconds came first.
        assert text.count("died with exit code 7; replacing it") >= 4, text
        wait_for(
            lambda: len(STARTED.findall(log_text(log))) > started,
            timeout=30,
            message="a child started after the pause",
        )
        # Five seconds; the test saw the pause up to one poll (50 ms) late.
        assert time.monotonic() - paused_at >= 4.5, log_text(log)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_a_second_signal_kills_the_children_and_exits_1(tmp_path):
    sleeper = enqueue("tests.pause", {"seconds": 60})
    log = tmp_path / "worker.log"
    proc = worker(log, "--processes", "2", "--workers", "1")
    try:
        wait_for(lambda: Run.objects.filter(task_id=sleeper.pk).exists(), message="task start")
        children = child_pids(log)
        assert len(children) == 2
        proc.send_signal(signal.SIGTERM)  # graceful: a child waits for its task
        wait_for(lambda: "stopping 2 worker processes" in log_text(log), message="the stop")
        time.sleep(0.5)
        assert proc.poll() is None  # still waiting for the 60-second task
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 1, log_text(log)
        assert "second signal: killing worker processes" in log_text(log)
        wait_for(lambda: not any(alive(pid) for pid in children), message="children gone")
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in child_pids(log):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_sigint_stops_the_supervisor_and_its_children_gracefully(tmp_path):
    task = enqueue("tests.pause", {"seconds": 1})
    log = tmp_path / "worker.log"
    proc = worker(log, "--processes", "2", "--workers", "1")
    try:
        wait_for(lambda: Run.objects.filter(task_id=task.pk).exists(), message="task start")
        children = child_pids(log)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, log_text(log)
        assert "SIGINT: stopping 2 worker processes" in log_text(log)
        assert not any(alive(pid) for pid in children)
        # The running task finished rather than being cut off.
        from django_taskqueue.models import Task

        assert not Task.objects.filter(pk=task.pk).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
