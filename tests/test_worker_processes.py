"""Real worker processes: draining, crashes, signals and broken connections."""

import signal
import subprocess
import time

import pytest
from django.db import connection

from django_taskqueue import enqueue, enqueue_many
from django_taskqueue.db import queue_db
from django_taskqueue.models import FailedTask, Task
from tests.models import Run
from tests.processes import run_python, wait_for, worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def stop(proc, timeout=30):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def log_text(path):
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize("supervised", [True, False])
def test_signals_that_arrive_while_the_main_thread_holds_a_lock_still_stop_it(supervised):
    # Python runs a signal handler in the main thread between two bytecodes, maybe
    # while that thread holds a lock the handler's work needs (here the wake-up
    # Event's, as in Event.clear()). Two SIGTERMs at once (systemd signals the whole
    # group, the supervisor forwards) once hung a worker this way.
    proc = run_python(
        "import logging, signal\n"
        "logging.getLogger('django_taskqueue').setLevel(logging.INFO)\n"
        "from django_taskqueue.worker import Worker\n"
        "w = Worker(listen=False)\n"
        f"w.install_signal_handlers(supervised={supervised})\n"
        "with w._wake._cond:\n"
        "    signal.raise_signal(signal.SIGTERM)\n"
        "print(w._stopping.wait(10), flush=True)\n"
        "signal.raise_signal(signal.SIGTERM)\n"
        "import time; time.sleep(2)\n"
        "print('still here', flush=True)\n"
    )
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    if supervised:
        # A repeated SIGTERM is ignored under a supervisor.
        assert proc.returncode == 0, err
        assert out.split("\n")[:2] == ["True", "still here"]
        assert "SIGTERM again: still stopping" in err
    else:
        # Without one, the second SIGTERM exits at once.
        assert proc.returncode == 1, err
        assert out.split() == ["True"]
        assert "SIGTERM again: exiting now" in err


def test_three_processes_drain_3000_tasks_exactly_once(tmp_path):
    enqueue_many([("tests.record", {"n": n}) for n in range(3000)])
    log = tmp_path / "worker.log"
    proc = worker(log, "--processes", "3", "--workers", "8", "--burst")
    assert proc.wait(240) == 0, log_text(log)
    assert Run.objects.count() == 3000, log_text(log)
    assert Run.objects.values("task_id").distinct().count() == 3000
    assert Run.objects.values("pid").distinct().count() > 1
    assert not Task.objects.exists()
    assert not FailedTask.objects.exists()


def test_sigkill_mid_task_runs_it_again_after_the_claim_expires(tmp_path):
    task = enqueue("tests.sleep", {"seconds": 60})
    log = tmp_path / "worker.log"
    first = worker(log, "--workers", "2", TASKQUEUE_TEST_LOCK_TIMEOUT="2")
    try:
        wait_for(lambda: Run.objects.filter(task_id=task.pk).exists(), message="task start")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert Task.objects.get(pk=task.pk).lock_id is not None  # still claimed by the dead
        second = worker(log, "--workers", "2", TASKQUEUE_TEST_LOCK_TIMEOUT="2")
        try:
            wait_for(
                lambda: Run.objects.filter(task_id=task.pk, name="tests.sleep.done").exists(),
                message="the rerun to finish",
            )
            wait_for(lambda: not Task.objects.filter(pk=task.pk).exists(), message="ack")
        finally:
            assert stop(second) == 0, log_text(log)
    finally:
        if first.poll() is None:
            first.kill()
    assert Run.objects.filter(task_id=task.pk, name="tests.sleep").count() == 2
    assert not FailedTask.objects.exists()


def test_a_task_that_keeps_killing_its_worker_ends_in_the_failure_log(tmp_path):
    task = enqueue("tests.kill", retry_max=1)
    log = tmp_path / "worker.log"
    # The supervisor replaces each killed child; each expiry counts as an attempt.
    proc = worker(log, "--processes", "1", "--workers", "1", TASKQUEUE_TEST_LOCK_TIMEOUT="1")
    try:
        wait_for(
            lambda: FailedTask.objects.filter(task_id=task.pk).exists(),
            timeout=90,
            message="the task to reach the failure log",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert Run.objects.filter(task_id=task.pk).count() == 2
    failed = FailedTask.objects.get()
    assert "gave up after 2 attempts (retry_max=1)" in failed.error
    assert not Task.objects.exists()


def test_sigterm_finishes_the_running_task_and_releases_the_rest(tmp_path):
    # The sleeper outlasts the release by a wide margin, so "at once" has room to be slow.
    sleeper = enqueue("tests.sleep", {"seconds": 10}, priority=0)
    others = [enqueue("tests.record", {"n": n}) for n in range(4)]
    log = tmp_path / "worker.log"
    proc = worker(log, "--workers", "1", "--buffer-size", "10", "--grace", "30")
    try:
        wait_for(lambda: Run.objects.filter(task_id=sleeper.pk).exists(), message="task start")
        assert (
            Task.objects.filter(pk__in=[t.pk for t in others], lock_id__isnull=False).count() == 4
        )
        proc.send_signal(signal.SIGTERM)
        # Released at once, while the sleeper still runs.
        wait_for(
            lambda: (
                not Task.objects.filter(
                    pk__in=[t.pk for t in others], lock_id__isnull=False
                ).exists()
            ),
            timeout=8,
            message="unstarted tasks to be released",
        )
        assert proc.poll() is None
        assert proc.wait(30) == 0, log_text(log)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert Run.objects.filter(task_id=sleeper.pk, name="tests.sleep.done").exists()
    assert not Task.objects.filter(pk=sleeper.pk).exists()
    assert Task.objects.filter(lock_id__isnull=True).count() == 4


def test_second_sigterm_exits_at_once(tmp_path):
    sleeper = enqueue("tests.pause", {"seconds": 30})
    log = tmp_path / "worker.log"
    proc = worker(log, "--workers", "1")
    try:
        wait_for(lambda: Run.objects.filter(task_id=sleeper.pk).exists(), message="task start")
        proc.send_signal(signal.SIGTERM)
        # The second signal only once the first one has been taken.
        wait_for(lambda: "SIGTERM: stopping" in log_text(log), message="the first signal")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 1
    finally:
        if proc.poll() is None:
            proc.kill()


def test_supervisor_passes_sigterm_to_children_and_replaces_dead_ones(tmp_path):
    import os

    log = tmp_path / "worker.log"
    # One child: after it is killed, only a replacement can run the later tasks.
    proc = worker(log, "--processes", "1", "--workers", "2")
    try:
        first = enqueue("tests.pause", {"seconds": 0})
        wait_for(lambda: Run.objects.filter(task_id=first.pk).exists(), message="first task")
        victim = Run.objects.get(task_id=first.pk).pid
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: "died with exit code -9; replacing it" in log_text(log), message="replacement"
        )
        tasks = enqueue_many([("tests.pause", {"seconds": 0.2}) for _ in range(20)])
        wait_for(
            lambda: Run.objects.filter(task_id__in=[t.pk for t in tasks]).count() == 20,
            message="all tasks to run",
        )
        pids = set(
            Run.objects.filter(task_id__in=[t.pk for t in tasks]).values_list("pid", flat=True)
        )
        assert len(pids) == 1 and victim not in pids
        assert stop(proc) == 0, log_text(log)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_notify_wakes_an_idle_worker_before_the_poll(tmp_path):
    if not queue_db().can_listen():
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's database layer's")
    log = tmp_path / "worker.log"
    proc = worker(log, "--workers", "2", TASKQUEUE_TEST_POLL_INTERVAL="30")
    try:
        warm = enqueue("tests.record")
        wait_for(
            lambda: Run.objects.filter(task_id=warm.pk).exists(), timeout=40, message="first task"
        )
        time.sleep(0.5)
        started = time.monotonic()
        task = enqueue("tests.record")
        wait_for(
            lambda: Run.objects.filter(task_id=task.pk).exists(),
            timeout=10,
            interval=0.005,
            message="pickup through NOTIFY",
        )
        assert time.monotonic() - started < 5  # the poll interval is 30 s
    finally:
        assert stop(proc) == 0, log_text(log)


def terminate_other_backends():
    """Kill every other connection to the test database, as the server would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0]
        cursor.execute(
            "SELECT id FROM information_schema.processlist "
            "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
        )
        ids = [row[0] for row in cursor.fetchall()]
        for id_ in ids:
            cursor.execute(f"KILL CONNECTION {int(id_)}")
        return len(ids)


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has no connections to kill")
def test_killed_connections_while_idle_and_while_running(tmp_path):
    log = tmp_path / "worker.log"
    proc = worker(log, "--workers", "2", TASKQUEUE_TEST_POLL_INTERVAL="0.2")
    try:
        warm = enqueue("tests.record")
        wait_for(lambda: Run.objects.filter(task_id=warm.pk).exists(), message="first task")
        # While idle.
        assert terminate_other_backends() >= 1
        after_idle = enqueue("tests.record")
        wait_for(
            lambda: Run.objects.filter(task_id=after_idle.pk).exists(),
            message="a task after the idle kill",
        )
        # While running a task.
        running = enqueue("tests.pause", {"seconds": 2})
        wait_for(lambda: Run.objects.filter(task_id=running.pk).exists(), message="start")
        assert terminate_other_backends() >= 1
        wait_for(
            lambda: not Task.objects.filter(pk=running.pk).exists(),
            message="the running task to be acknowledged",
        )
        last = enqueue("tests.record")
        wait_for(lambda: Run.objects.filter(task_id=last.pk).exists(), message="a later task")
        assert proc.poll() is None
        assert "database error" in log_text(log) or "LISTEN connection failed" in log_text(log)
    finally:
        assert stop(proc) == 0, log_text(log)
    assert not FailedTask.objects.exists()


def test_sigterm_to_the_whole_group_still_stops_gracefully(tmp_path):
    """A service manager may signal the supervisor and every child at once."""
    import os

    sleeper = enqueue("tests.sleep", {"seconds": 2})
    log = tmp_path / "worker.log"
    proc = worker(log, "--processes", "1", "--workers", "1", new_session=True)
    try:
        wait_for(lambda: Run.objects.filter(task_id=sleeper.pk).exists(), message="task start")
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(30) == 0, log_text(log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert Run.objects.filter(task_id=sleeper.pk, name="tests.sleep.done").exists()
    assert not Task.objects.filter(pk=sleeper.pk).exists()
