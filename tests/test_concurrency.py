"""Signature dedupe holds when many publishers race: the database decides."""

import threading
import time

import pytest
from django.db import connection

from django_taskqueue import enqueue
from django_taskqueue.models import Task
from tests.processes import run_python

pytestmark = pytest.mark.django_db(transaction=True)


def test_eight_threads_one_signature():
    barrier = threading.Barrier(8)
    results, errors = [], []

    def publish(n):
        try:
            barrier.wait(timeout=10)
            results.append(enqueue("tests.record", {"n": n}, signature="race"))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=publish, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(results) == 8
    assert sum(r is not None for r in results) == 1
    assert Task.objects.filter(signature="race").count() == 1


@pytest.mark.slow
def test_four_processes_one_signature(tmp_path):
    go = tmp_path / "go"
    code = f"""
import pathlib, time
from django_taskqueue import enqueue
pathlib.Path({str(tmp_path)!r}, str(__import__("os").getpid())).touch()
while not pathlib.Path({str(go)!r}).exists():
    time.sleep(0.001)
for attempt in range(20):
    task = enqueue("tests.record", {{"attempt": attempt}}, signature="race-p")
    print("stored" if task is not None else "dropped")
"""
    procs = [run_python(code) for _ in range(4)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.iterdir())) < 4 and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.02)
    go.touch()
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    lines = [line for out, _ in outputs for line in out.split()]
    assert len(lines) == 80
    assert lines.count("stored") == 1
    assert Task.objects.filter(signature="race-p").count() == 1
