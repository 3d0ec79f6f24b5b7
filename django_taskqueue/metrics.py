"""Prometheus metrics, through ``prometheus_client`` (``pip install
django-taskqueue[prometheus]``).

Counting starts in a process when :func:`enable` is called: by ``taskqueue_worker
--metrics-port`` in the worker, and by a project that wants the enqueue counter of its
web processes (``TASKQUEUE["METRICS"] = True``, with :func:`metrics_view` in its URLs).
Until then nothing is counted and nothing is imported. Under ``--processes`` the
children write ``prometheus_client``'s multiprocess files, which the supervisor adds up
when it serves them.
"""

from __future__ import annotations

import os
from collections import Counter as Tally
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

    from .db import FinishReport
    from .models import Task
    from .results import Result

# Seconds: from a millisecond no-op to a long job.
RUN_TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
# Seconds from due to started: what a user waits on top of the run.
PICKUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
OUTCOMES = ("succeeded", "failed", "retried", "requeued", "timed_out")
MISSING = (
    "metrics need prometheus_client: pip install 'django-taskqueue[prometheus]' "
    "(or prometheus-client)"
)


class Metrics:
    """The process's metric objects, made once."""

    def __init__(self) -> None:
        try:
            from prometheus_client import Counter, Histogram
        except ImportError:
            raise ImproperlyConfigured(MISSING) from None
        labels = ["task", "queue"]
        self.enqueued = Counter(
            "taskqueue_tasks_enqueued", "Tasks stored in the queue (by enqueue)", labels
        )
        self.outcomes = {
            outcome: Counter(
                f"taskqueue_tasks_{outcome}",
                f"Task runs {outcome.replace('_', ' ')} (by the worker)",
                labels,
            )
            for outcome in OUTCOMES
        }
        self.run_time = Histogram(
            "taskqueue_task_run_seconds", "Run time of a task", labels, buckets=RUN_TIME_BUCKETS
        )
        self.pickup_lag = Histogram(
            "taskqueue_task_pickup_lag_seconds",
            "Seconds from a task's due time to the start of its run",
            ["queue"],
            buckets=PICKUP_BUCKETS,
        )


_metrics: Metrics | None = None


def enable() -> Metrics:
    """Start counting in this process (idempotent)."""
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics


def current() -> Metrics | None:
    """The metrics if counting is on in this process."""
    return _metrics


def count_enqueued(tasks: Iterable[Task]) -> None:
    if _metrics is None:
        return
    from .outcomes import task_label

    tally = Tally((task_label(task), task.queue) for task in tasks)
    for (label, queue), count in tally.items():
        _metrics.enqueued.labels(label, queue).inc(count)


def count_outcomes(batch: list[tuple[Task, Result]], report: FinishReport) -> None:
    if _metrics is None:
        return
    from .outcomes import outcomes, task_label
    from .worker.logs import RUN_TIMES

    run_time, pickup_lag = _metrics.run_time, _metrics.pickup_lag
    tally: Tally[tuple[str, str, str]] = Tally()
    for task, outcome in outcomes(batch, report):
        label = task_label(task)
        tally[outcome, label, task.queue] += 1
        waited, elapsed = task.__dict__.get(RUN_TIMES, (0.0, 0.0))
        run_time.labels(label, task.queue).observe(elapsed)
        if task.retry_count == 0:  # a retry's wait is its backoff, not pickup
            pickup_lag.labels(task.queue).observe(waited)
    for (outcome, label, queue), count in tally.items():
        _metrics.outcomes[outcome].labels(label, queue).inc(count)


def count_timed_out(task: Task) -> None:
    if _metrics is not None:
        from .outcomes import task_label

        _metrics.outcomes["timed_out"].labels(task_label(task), task.queue).inc()


# Serving -------------------------------------------------------------------------


class QueueCollector:
    """Gauges read from the database at each scrape: tasks by queue and state (the
    planner's estimates, or capped counts, on big tables), the lag, and the workers."""

    def __init__(self, using: str) -> None:
        self.using = using

    def describe(self) -> list[Any]:
        return []  # collected at scrape time only

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        from .db import queue_db
        from .models import WorkerRecord
        from .status import count_tasks

        db = queue_db(self.using)
        try:
            now = db.database_now()
            tasks = GaugeMetricFamily(
                "taskqueue_queue_tasks",
                "Queued tasks by queue and state (estimated on big tables)",
                labels=["queue", "state"],
            )
            estimated = GaugeMetricFamily(
                "taskqueue_queue_counts_estimated",
                "1 where the queue's counts are estimates or capped",
                labels=["queue"],
            )
            for row in count_tasks(self.using, now):
                for state, count in row.counts.items():
                    tasks.add_metric([row.queue, state], count)
                estimated.add_metric([row.queue], 1.0 if row.estimated else 0.0)
            oldest = db.oldest_due(now)
            lag = GaugeMetricFamily(
                "taskqueue_queue_lag_seconds", "Age of the oldest due task not started"
            )
            lag.add_metric([], (now - oldest).total_seconds() if oldest else 0.0)
            workers = GaugeMetricFamily(
                "taskqueue_workers", "Worker processes by state", labels=["state"]
            )
            records = WorkerRecord.objects.using(self.using)
            workers.add_metric(["alive"], records.alive(now).count())
            workers.add_metric(["dead"], records.dead(now).count())
        finally:
            connections[self.using].close()  # this thread's: scrapes are far apart
        yield from (tasks, estimated, lag, workers)


def exposition(using: str) -> tuple[bytes, str]:
    """This process's metrics (or, in multiprocess mode, every process's in the
    directory) and the queue's gauges, as Prometheus text."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry
    from prometheus_client import generate_latest as latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(using))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
        return latest(counted) + latest(registry), CONTENT_TYPE_LATEST
    return latest(REGISTRY) + latest(registry), CONTENT_TYPE_LATEST


def metrics_view(request: HttpRequest) -> HttpResponse:
    """A view serving :func:`exposition` of the queue's database, for a web process."""
    from django.http import HttpResponse

    from .conf import conf

    body, content_type = exposition(conf.DATABASE)
    return HttpResponse(body, content_type=content_type)
