"""Measure one database; print one JSON object. Run by ``python -m benchmarks``."""

from __future__ import annotations

import json
import os
import signal
import statistics
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
        # At the command's default verbosity, as users run it (BENCH_VERBOSITY=0: quiet).
        [
            sys.executable,
            "-m",
            "django",
            "taskqueue_worker",
            *args,
            "-v",
            os.environ.get("BENCH_VERBOSITY", "1"),
        ],
        env=env,
        cwd=ROOT,
    )


def _high_water_mb(pid: int) -> float:
    """The process's peak resident memory since it started its program (VmHWM)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _wait_rusage(proc: subprocess.Popen, timeout: float) -> tuple[int, float]:
    """Wait for ``proc``; return (exit code, its peak RSS in MB).

    The peak is read from /proc while it runs: the rusage of a child also counts the
    pages it shared with this (much bigger) process between fork and exec.
    """
    deadline = time.monotonic() + timeout
    peak = 0.0
    while True:
        peak = max(peak, _high_water_mb(proc.pid))
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, peak
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


def vacuum() -> None:
    """Start each phase from clean tables, as autovacuum would keep them (it may be off)."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE django_taskqueue_task")
            cursor.execute("SELECT to_regclass('bench_raw')")
            if cursor.fetchone()[0]:
                cursor.execute("VACUUM ANALYZE bench_raw")


def drain(count: int, *args: str) -> dict[str, float]:
    from django_taskqueue import enqueue_many

    tasks = enqueue_many([("bench.noop", {}) for _ in range(count)])
    vacuum()
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


def pickup(count: int, interval: float, rounds: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Pickup latency of an idle worker and of the raw LISTEN loop: (p50, p95) of each.

    ``count`` tasks for each, enqueued ``interval`` apart, in ``rounds`` alternating
    rounds (the worker stays up and idle while the raw loop runs), so that a slow
    moment of a shared machine falls on both rather than on one.
    """
    from benchmarks.raw import _percentiles, pickup_latencies
    from django_taskqueue import enqueue
    from django_taskqueue.models import Task

    def wait_until_done(ids: set, what: str) -> None:
        deadline = time.monotonic() + 60
        while Task.objects.filter(pk__in=ids).exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)

    per_round = max(1, count // rounds)
    raw: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        proc = _worker(directory)
        try:
            warm = enqueue("bench.latency", {"t": time.time()})
            wait_until_done({warm.pk}, "the worker to start")
            tasks = []
            for _ in range(rounds):
                time.sleep(0.5)
                batch = []
                for _ in range(per_round):
                    batch.append(enqueue("bench.latency", {"t": time.time()}))
                    time.sleep(interval)
                wait_until_done({t.pk for t in batch}, "the tasks to run")
                tasks += batch
                raw += pickup_latencies(per_round, interval)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        records = [r for r in _records(directory) if r[0] != warm.pk.hex]
    _check_exactly_once([r[0] for r in records], {t.pk.hex for t in tasks}, "pickup")
    if len(raw) != len(tasks):
        raise RuntimeError(f"raw pickup: {len(raw)} of {len(tasks)} rows seen")
    return _percentiles([float(r[1]) for r in records]), _percentiles(raw)


def enqueue_single(count: int, rounds: int = 10) -> tuple[float, float, float | None]:
    """Rows per second of enqueue(), of the raw insert and (PostgreSQL) of the raw insert
    on a connection set up as Django sets it up, measured in alternate rounds so that
    all see the same machine and the same table sizes."""
    from django.db import connection

    from benchmarks.raw import Inserter
    from django_taskqueue import enqueue
    from django_taskqueue.models import Task

    inserters = [Inserter()]
    if connection.vendor == "postgresql":
        inserters.append(Inserter(django_settings=True))
    ours = 0.0
    theirs = [0.0] * len(inserters)
    per_round = max(1, count // rounds)
    for _ in range(rounds):
        for index, inserter in enumerate(inserters):
            theirs[index] += inserter.run(per_round)
        started = time.perf_counter()
        for _ in range(per_round):
            enqueue("bench.noop")
        ours += time.perf_counter() - started
    for inserter in inserters:
        inserter.close()
    Task.objects.all().delete()
    total = per_round * rounds
    rates = [total / spent for spent in theirs]
    return total / ours, rates[0], rates[1] if len(rates) > 1 else None


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
        result["enqueue"], result["raw_insert"], result["raw_insert_django"] = enqueue_single(
            n_enqueue
        )
        result["raw_bulk"] = raw.insert_multi_row(n_bulk)
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {raw.TABLE}")
        # The headline drain and its raw limit run in alternating rounds, as the
        # enqueue loops do, and the medians are compared: one slow moment of a shared
        # machine then moves neither figure much.
        raw_rates, raw_django_rates, runs = [], [], []
        for _ in range(1 if short else 5):
            raw.insert_multi_row(n_drain)
            vacuum()
            raw_rates.append(raw.claim_and_delete(n_drain, 32))
            if vendor == "postgresql":
                raw.insert_multi_row(n_drain)
                vacuum()
                raw_django_rates.append(raw.claim_and_delete(n_drain, 32, django_settings=True))
            runs.append(drain(n_drain))
        result["raw_claim_32"] = statistics.median(raw_rates)
        if raw_django_rates:
            result["raw_claim_32_django"] = statistics.median(raw_django_rates)
        rates = [run["rate"] for run in runs]
        result["drain_default"] = {
            "rate": statistics.median(rates),
            "rss_mb": max(run["rss_mb"] for run in runs),
        }
        result["drain_rounds"] = [
            round(ours / theirs, 3) for ours, theirs in zip(rates, raw_rates, strict=True)
        ]
        raw.insert_multi_row(min(n_drain, 3000))
        vacuum()
        result["raw_claim_1"] = raw.claim_and_delete(min(n_drain, 3000), 1)
        if vendor == "postgresql":
            result["pickup"], result["raw_pickup"] = pickup(
                n_pickup, 0.02, rounds=1 if short else 3
            )
    finally:
        raw.drop_table()

    result["enqueue_many"] = enqueue_bulk(n_bulk)
    result["drain_1_thread"] = drain(n_drain, "--workers", "1")
    result["drain_2_processes"] = drain(n_drain, "--processes", "2")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
