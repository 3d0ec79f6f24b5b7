"""Time limits: a run past its limit is an error, retried with backoff, and its worker
process exits (code 3) so that the stuck thread never runs beside a retry."""

import math
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from django_taskqueue import consumer, enqueue
from django_taskqueue.apps import framework_available
from django_taskqueue.registry import registry
from django_taskqueue.worker.limits import EXIT_TIME_LIMIT
from tests.models import Run
from tests.processes import worker

pytestmark = pytest.mark.django_db(transaction=True)


def task_named(name, arguments=None):
    from django_taskqueue.models import Task

    return Task(name=name, arguments=arguments or {})


def test_a_time_limit_comes_from_the_consumer_the_setting_or_the_framework_task(
    consumers, taskqueue_settings
):
    assert registry.time_limit(task_named("tests.hang")) == 1.0
    assert registry.time_limit(task_named("tests.record")) is None
    taskqueue_settings["TASK_TIMEOUT"] = 30
    assert registry.time_limit(task_named("tests.record")) == 30.0

    @consumer("tests.record", timeout=5)
    def second(args):
        return None

    assert registry.time_limit(task_named("tests.record")) == 5.0  # the smallest


@pytest.mark.skipif(not framework_available(), reason="needs Django's tasks framework")
def test_a_framework_task_carries_its_own_time_limit():
    from django_taskqueue.models import Task
    from tests import framework_tasks

    framework_tasks.limited.enqueue()
    framework_tasks.limited.using(timeout=7).enqueue()
    limits = sorted(registry.time_limit(t) for t in Task.objects.all())
    assert limits == [2.5, 7.0]


@pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan, "10", True])
def test_a_bad_timeout_is_refused_when_the_consumer_is_declared(bad):
    with pytest.raises((TypeError, ValueError), match="timeout must be"):
        consumer("tests.whatever", timeout=bad)


@pytest.mark.slow
def test_a_run_past_its_limit_is_retried_later_and_its_worker_exits(tmp_path):
    from django_taskqueue.models import Task

    stuck = enqueue("tests.hang", priority=0)
    quick = [enqueue("tests.record", {"n": n}, priority=5) for n in range(5)]
    log = tmp_path / "worker.log"
    started = time.monotonic()
    process = worker(log, "--burst", "--workers", "2")
    assert process.wait(60) == EXIT_TIME_LIMIT, log.read_text()
    assert time.monotonic() - started < 30
    assert "ran past its time limit of 1s" in log.read_text()
    # The other runs finished; the stuck one ran once and waits for its retry.
    assert Run.objects.filter(task_id__in=[t.pk for t in quick]).count() == len(quick)
    assert Run.objects.filter(task_id=stuck.pk).count() == 1
    row = Task.objects.get()
    assert row.pk == stuck.pk and row.retry_count == 1 and row.lock_id is None
    assert "TimeLimitExceeded: timed out after 1 s" in row.error
    assert row.start_at > timezone.now() + timedelta(seconds=30)


@pytest.mark.slow
def test_the_supervisor_replaces_a_worker_process_that_hit_a_time_limit(tmp_path):
    from django_taskqueue.models import Task

    stuck = enqueue("tests.hang", priority=0)
    quick = [enqueue("tests.record", {"n": n}, priority=5) for n in range(3)]
    log = tmp_path / "worker.log"
    process = worker(log, "--processes", "1", "--workers", "1", "--burst")
    # The first child exits (code 3) and releases what it did not start; its
    # replacement runs those, finds nothing else due, and ends.
    assert process.wait(60) == 0, log.read_text()
    text = log.read_text()
    assert "exited after a run passed its time limit; replacing it" in text
    assert text.count("started worker process 0") == 2
    assert Run.objects.filter(task_id__in=[t.pk for t in quick]).count() == 3
    assert Task.objects.get().pk == stuck.pk
