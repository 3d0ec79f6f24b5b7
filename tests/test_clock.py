"""Workers go by the database's clock: a host whose clock is off neither runs a task
early or twice nor starves due tasks. Tested with worker processes whose clock
libfaketime moves (the Debian package faketime)."""

import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from django_taskqueue import enqueue
from django_taskqueue.db import queue_db
from django_taskqueue.models import Task
from django_taskqueue.worker import Worker
from django_taskqueue.worker.clock import DatabaseClock
from tests.models import Run
from tests.processes import worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


@pytest.fixture(autouse=True)
def server_clock():
    if queue_db().vendor == "sqlite":
        pytest.skip("SQLite has no server: each process reads its own host's clock")
    if not LIBFAKETIME.exists():
        pytest.skip("libfaketime is needed (apt-get install faketime; .ci/run does)")


def skewed_burst(tmp_path, offset, **env):
    """Run a worker process with --burst whose clock is ``offset`` off (e.g. "+300s")."""
    log = tmp_path / "skewed.log"
    process = worker(log, "--burst", LD_PRELOAD=str(LIBFAKETIME), FAKETIME=offset, **env)
    assert process.wait(60) == 0, log.read_text()
    return log.read_text()


def test_the_faked_clock_really_is_off():
    # The fault the other tests rely on: the worker process's own clock is skewed.
    def now(**env):
        code = "import time; print(time.time())"
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        return float(done.stdout)

    assert now(LD_PRELOAD=str(LIBFAKETIME), FAKETIME="+300s") - now() > 290


def test_a_worker_whose_clock_is_ahead_runs_nothing_before_it_is_due(tmp_path):
    due = enqueue("tests.record", {"n": 1})
    later = enqueue("tests.record", {"n": 2}, delay_seconds=120)
    log = skewed_burst(tmp_path, "+300s")
    assert list(Run.objects.values_list("task_id", flat=True)) == [due.pk]
    assert Task.objects.get(pk=later.pk).lock_id is None
    assert "s ahead of the database's" in log


def test_a_worker_whose_clock_is_behind_still_runs_due_tasks(tmp_path):
    tasks = [enqueue("tests.record", {"n": n}) for n in range(3)]
    log = skewed_burst(tmp_path, "-300s")
    assert set(Run.objects.values_list("task_id", flat=True)) == {t.pk for t in tasks}
    assert "s behind the database's" in log


def test_a_worker_whose_clock_is_ahead_leaves_a_live_claim_alone(tmp_path):
    task = enqueue("tests.pause", {"seconds": 6})
    holder = Worker(workers=1, lock_timeout=4, listen=False, grace=10)
    thread = threading.Thread(target=holder.run)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not Run.objects.filter(task_id=task.pk).exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # Ten minutes ahead, every live claim would look expired by its own clock.
        skewed_burst(tmp_path, "+600s", TASKQUEUE_TEST_LOCK_TIMEOUT="4")
        while Task.objects.filter(pk=task.pk).exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        holder.stop()
        thread.join(30)
    assert Run.objects.filter(task_id=task.pk).count() == 1


def test_the_database_clock_measures_the_hosts_offset():
    clock = DatabaseClock(queue_db())
    clock.sync()
    assert abs(clock.offset) < timedelta(seconds=1)
    assert abs(clock() - timezone.now()) < timedelta(seconds=1)
