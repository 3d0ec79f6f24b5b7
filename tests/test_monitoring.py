"""Watching the queue work: worker records, the health port, Prometheus metrics and
systemd's watchdog, with real worker processes (and one in-process worker whose loop a
signal receiver holds up)."""

import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from django_taskqueue import enqueue
from django_taskqueue.models import FailedTask, Task, WorkerRecord
from django_taskqueue.signals import task_failed
from django_taskqueue.worker import Worker
from django_taskqueue.worker.probes import Probes
from tests.processes import wait_for, worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Claims of 4 s: the worker refreshes its record every second, dead after 3.
FAST = {"TASKQUEUE_TEST_LOCK_TIMEOUT": "4"}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(port, path, timeout=5.0):
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def answers(port, path):
    try:
        get(port, path, timeout=1)
    except OSError:
        return False
    return True


def samples(text):
    """{(name, frozenset(labels.items())): value} of a Prometheus exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name, frozenset(sample.labels.items())] = sample.value
    return found


def value(found, name, **labels):
    return found.get((name, frozenset(labels.items())), 0.0)


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except Exception:
            proc.kill()
            raise


def enqueue_outcomes():
    """Three successes, one failure for good, one retry (next attempt in minutes)."""
    for n in range(3):
        enqueue("tests.noop", {"n": n})
    enqueue("tests.raise", {}, retry_max=0)
    return enqueue("tests.raise", {"message": "again"}, retry_max=3)


def settled(retried):
    return (
        not Task.objects.due().filter(retry_count=0).exists()
        and FailedTask.objects.count() == 1
        and Task.objects.filter(pk=retried.pk, retry_count=1).exists()
    )


def test_a_worker_records_itself_counts_its_runs_and_leaves_the_list_at_a_clean_stop(tmp_path):
    log = tmp_path / "worker.log"
    retried = enqueue_outcomes()
    proc = worker(log, "--workers", "2", "--queue", "default", **FAST)
    try:
        wait_for(lambda: settled(retried), timeout=60, message="the runs")
        wait_for(
            lambda: WorkerRecord.objects.filter(succeeded=3, failed=1, retried=1).exists(),
            timeout=10,
            message="the refreshed record",
        )
        record = WorkerRecord.objects.get()
        assert record.pid == proc.pid
        assert record.hostname == socket.gethostname()
        assert (record.threads, record.queues) == (2, ["default"])
        assert record.is_alive() and record.running == 0
        minutes = list(record.history.values())
        assert sum(m[0] for m in minutes) == 3 and sum(m[1] for m in minutes) == 1
        assert WorkerRecord.objects.alive().count() == 1
    finally:
        stop(proc)
    assert proc.returncode == 0, log.read_text()
    record = WorkerRecord.objects.get()  # kept, hidden, while the chart draws it
    assert record.stopped_at is not None
    assert not WorkerRecord.objects.listed().exists()


def test_an_idle_worker_stops_without_leaving_a_record(tmp_path):
    log = tmp_path / "worker.log"
    proc = worker(log, **FAST)
    try:
        wait_for(lambda: WorkerRecord.objects.exists(), timeout=30, message="the record")
    finally:
        stop(proc)
    assert proc.returncode == 0
    assert not WorkerRecord.objects.exists()


def test_a_killed_workers_record_turns_dead(tmp_path):
    log = tmp_path / "worker.log"
    proc = worker(log, **FAST)
    try:
        wait_for(lambda: WorkerRecord.objects.alive().exists(), timeout=30, message="record")
        proc.kill()
        proc.wait(10)
        # Refreshed every second, dead three seconds after the last refresh.
        wait_for(lambda: WorkerRecord.objects.dead().exists(), timeout=10, message="dead")
        assert WorkerRecord.objects.listed().get().pid == proc.pid
    finally:
        stop(proc)


def test_a_running_task_is_held_by_a_recorded_worker(tmp_path):
    task = enqueue("tests.pause", {"seconds": 3})
    log = tmp_path / "worker.log"
    proc = worker(log, **FAST)
    try:
        wait_for(
            lambda: WorkerRecord.objects.filter(running=1).exists(), timeout=30, message="running"
        )
        held = Task.objects.get(pk=task.pk)
        assert WorkerRecord.objects.get(pk=held.lock_id).pid == proc.pid
    finally:
        stop(proc)


@pytest.mark.parametrize("processes", [None, 2])
def test_the_metrics_port_counts_what_the_worker_ran(tmp_path, processes):
    port = free_port()
    retried = enqueue_outcomes()
    enqueue("tests.noop", {"later": True}, delay_hours=1)
    enqueue("tests.noop", {"later": True}, delay_hours=1, queue="reports")
    args = ["--metrics-port", str(port), "--health-port", str(port), "--http-host", "127.0.0.1"]
    if processes:
        args += ["--processes", str(processes), "--workers", "1"]
    log = tmp_path / "worker.log"
    proc = worker(log, *args, **FAST)
    try:
        wait_for(lambda: settled(retried), timeout=60, message="the runs")
        wait_for(lambda: WorkerRecord.objects.alive().count() == (processes or 1), timeout=30)
        wait_for(lambda: answers(port, "/metrics"), timeout=30, message="the port")
        status, text = get(port, "/metrics")
        assert status == 200
        found = samples(text)
        default = {"task": "tests.noop", "queue": "default"}
        failing = {"task": "tests.raise", "queue": "default"}
        assert value(found, "taskqueue_tasks_succeeded_total", **default) == 3, text
        assert value(found, "taskqueue_tasks_failed_total", **failing) == 1, text
        assert value(found, "taskqueue_tasks_retried_total", **failing) == 1, text
        assert value(found, "taskqueue_task_run_seconds_count", **default) == 3, text
        assert value(found, "taskqueue_task_pickup_lag_seconds_count", queue="default") == 5
        assert value(found, "taskqueue_queue_tasks", queue="reports", state="scheduled") == 1
        assert value(found, "taskqueue_queue_tasks", queue="default", state="scheduled") == 2
        assert value(found, "taskqueue_workers", state="alive") == (processes or 1)
        assert get(port, "/health") == (200, "ok\n")
    finally:
        stop(proc)
    assert proc.returncode == 0, log.read_text()


def test_health_answers_503_while_a_child_process_is_frozen(tmp_path):
    port = free_port()
    log = tmp_path / "worker.log"
    args = ["--processes", "2", "--health-port", str(port), "--health-timeout", "2"]
    proc = worker(log, *args, "--http-host", "127.0.0.1", **FAST)
    child = None
    try:
        wait_for(lambda: WorkerRecord.objects.alive().count() == 2, timeout=60, message="both")
        assert get(port, "/health") == (200, "ok\n")
        child = WorkerRecord.objects.order_by("pid").first().pid
        os.kill(child, signal.SIGSTOP)
        wait_for(lambda: get(port, "/health")[0] == 503, timeout=15, message="503")
        status, body = get(port, "/healthz")
        assert status == 503 and f"(pid {child})" in body and "has not turned" in body
        os.kill(child, signal.SIGCONT)
        wait_for(lambda: get(port, "/health")[0] == 200, timeout=15, message="200 again")
    finally:
        if child is not None:
            os.kill(child, signal.SIGCONT)
        stop(proc)


def test_health_answers_503_while_the_loop_is_held_up_in_process():
    release = threading.Event()

    def hold(**kwargs):
        release.wait(20)  # runs in the coordinator's thread: its loop stops turning

    enqueue("tests.raise", {}, retry_max=0)
    task_failed.connect(hold, weak=False)
    probes = Probes(host="127.0.0.1", health_port=0, timeout=1.0)
    runner = Worker(workers=1, listen=False, lock_timeout=4)
    servers = probes.start(runner.using, lambda: probes.stuck(runner.liveness))
    thread = threading.Thread(target=runner.run)
    thread.start()
    try:
        port = servers[0].port
        wait_for(lambda: get(port, "/health")[0] == 503, timeout=15, message="503")
        assert "the worker: its loop has not turned" in get(port, "/health")[1]
        release.set()
        wait_for(lambda: get(port, "/health")[0] == 200, timeout=15, message="200 again")
    finally:
        release.set()
        task_failed.disconnect(hold)
        runner.stop()
        thread.join(30)
        for server in servers:
            server.stop()


def test_systemd_hears_ready_watchdog_and_stopping(tmp_path):
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(30)
    log = tmp_path / "worker.log"
    proc = worker(log, NOTIFY_SOCKET=address, WATCHDOG_USEC="1000000", **FAST)
    try:
        heard = [listener.recv(100).decode()]
        assert heard == ["READY=1"], log.read_text()
        started = time.monotonic()
        watchdogs = 0
        while watchdogs < 3:
            message = listener.recv(100).decode()
            assert message == "WATCHDOG=1"
            watchdogs += 1
        # At half of WATCHDOG_USEC, even when idle.
        assert time.monotonic() - started < 5
        proc.send_signal(signal.SIGTERM)
        while (message := listener.recv(100).decode()) == "WATCHDOG=1":
            pass
        assert message == "STOPPING=1"
        assert proc.wait(30) == 0
    finally:
        stop(proc)
        listener.close()
