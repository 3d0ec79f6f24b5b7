"""Measure one database; print one JSON object. Run by ``python -m benchmarks``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parent.parent


def _records(directory: Path) -> list[list[str]]:
    lines = []
    for path in directory.glob("*.txt"):
        lines.extend(line.split() for line in path.read_text().splitlines() if line)
    return lines


def _worker(record_dir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "BENCH_RECORD_DIR": str(record_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "django", "taskqueue_worker", *args, "-v", "0"],
        env=env,
        cwd=ROOT,
    )


def _wait_rusage(proc: subprocess.Popen, timeout: float) -> tuple[int, float]:
    """Wait for ``proc``; return (exit code, its peak RSS in MB)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage.ru_maxrss / 1024
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("worker did not finish in time")
        time.sleep(0.01)


def _check_exactly_once(ids: list[str], expected: set[str], what: str) -> None:
    from django_taskqueue.models import Task

    if len(ids) != len(expected) or set(ids) != expected:
        raise RuntimeError(
            f"{what}: {len(ids)} runs of {len(set(ids))} distinct tasks, expected "
            f"{len(expected)} each exactly once"
        )
    if Task.objects.exists():
        raise RuntimeError(f"{what}: {Task.objects.count()} task(s) left in the queue")


def drain(count: int, *args: str) -> dict[str, float]:
    from django_taskqueue import enqueue_many

    tasks = enqueue_many([("bench.noop", {}) for _ in range(count)])
    expected = {t.pk.hex for t in tasks}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proc = _worker(Path(tmp), "--burst", *args)
        code, rss = _wait_rusage(proc, timeout=600)
        wall = time.perf_counter() - started
        if code != 0:
            raise RuntimeError(f"worker exited with {code}")
        records = _records(Path(tmp))
    _check_exactly_once([r[0] for r in records], expected, f"drain {args}")
    stamps = sorted(float(r[1]) for r in records)
    span = stamps[-1] - stamps[0]
    return {"rate": (count - 1) / span if span > 0 else float("inf"), "rss_mb": rss, "wall": wall}


def pickup(count: int, interval: float) -> tuple[float, float]:
    from benchmarks.raw import _percentiles
    from django_taskqueue import enqueue

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        proc = _worker(directory)
        try:
            warm = enqueue("bench.latency", {"t": time.time()})
            deadline = time.monotonic() + 60
            while not any(r[0] == warm.pk.hex for r in _records(directory)):
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker never started")
                time.sleep(0.05)
            time.sleep(0.5)
            expected = set()
            for _ in range(count):
                expected.add(enqueue("bench.latency", {"t": time.time()}).pk.hex)
                time.sleep(interval)
            deadline = time.monotonic() + 60
            while len(_records(directory)) < count + 1 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        records = [r for r in _records(directory) if r[0] != warm.pk.hex]
    _check_exactly_once([r[0] for r in records], expected, "pickup")
    return _percentiles([float(r[1]) for r in records])


def enqueue_single(count: int) -> float:
    from django_taskqueue import enqueue
    from django_taskqueue.models import Task

    started = time.perf_counter()
    for _ in range(count):
        enqueue("bench.noop")
    rate = count / (time.perf_counter() - started)
    Task.objects.all().delete()
    return rate


def enqueue_bulk(count: int) -> float:
    from django_taskqueue import enqueue_many
    from django_taskqueue.models import Task

    items = [("bench.noop", {}) for _ in range(count)]
    started = time.perf_counter()
    enqueue_many(items)
    rate = count / (time.perf_counter() - started)
    Task.objects.all().delete()
    return rate


def main() -> None:
    short = "--short" in sys.argv
    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from benchmarks import raw

    call_command("migrate", verbosity=0)
    from django_taskqueue.models import FailedTask, Task

    Task.objects.all().delete()
    FailedTask.objects.all().delete()
    vendor = connection.vendor
    n_enqueue = 500 if short else 3000
    n_bulk = 2000 if short else 20000
    n_drain = 2000 if short else 20000
    n_pickup = 50 if short else 300
    result: dict[str, object] = {"vendor": vendor, "short": short}

    raw.create_table()
    try:
        result["raw_insert"] = raw.insert_one_per_transaction(n_enqueue)
        result["raw_bulk"] = raw.insert_multi_row(n_bulk)
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {raw.TABLE}")
        raw.insert_multi_row(n_drain)
        result["raw_claim_32"] = raw.claim_and_delete(n_drain, 32)
        raw.insert_multi_row(min(n_drain, 3000))
        result["raw_claim_1"] = raw.claim_and_delete(min(n_drain, 3000), 1)
        if vendor == "postgresql":
            result["raw_pickup"] = raw.pickup_latency(n_pickup, 0.02)
    finally:
        raw.drop_table()

    result["enqueue"] = enqueue_single(n_enqueue)
    result["enqueue_many"] = enqueue_bulk(n_bulk)
    result["drain_default"] = drain(n_drain)
    result["drain_1_thread"] = drain(n_drain // 4, "--workers", "1")
    result["drain_2_processes"] = drain(n_drain, "--processes", "2")
    if vendor == "postgresql":
        result["pickup"] = pickup(n_pickup, 0.02)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
