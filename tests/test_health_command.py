"""taskqueue_health: its exit code and its one line, for each condition."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_taskqueue.db import queue_db
from tests.factories import TaskFactory
from tests.test_status import worker

pytestmark = pytest.mark.django_db


def health(*args):
    """(exit code, the line printed)."""
    out = StringIO()
    try:
        call_command("taskqueue_health", *args, stdout=out)
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    return code, out.getvalue().strip()


@pytest.fixture
def now():
    return queue_db("default").database_now()


def test_no_worker_is_unhealthy():
    assert health() == (1, "unhealthy: 0 live worker(s), fewer than 1")


def test_a_live_worker_is_healthy(now):
    worker(now)
    assert health() == (0, "healthy: 1 live worker(s)")


def test_dead_and_stopped_workers_do_not_count(now):
    worker(now, alive=False)
    stopped = worker(now)
    stopped.stopped_at = now
    stopped.save()
    assert health()[0] == 1


def test_min_workers(now):
    worker(now)
    worker(now)
    assert health("--min-workers", "2") == (0, "healthy: 2 live worker(s)")
    assert health("--min-workers", "3") == (1, "unhealthy: 2 live worker(s), fewer than 3")


def test_queue_counts_the_workers_serving_it(now):
    worker(now, queues=["emails"])
    worker(now)  # no queues: serves every queue
    assert health("--queue", "emails", "--min-workers", "2")[0] == 0
    assert health("--queue", "reports", "--min-workers", "2") == (
        1,
        "unhealthy: 1 live worker(s) serving queue 'reports', fewer than 2",
    )
    code, line = health("--queue", "emails", "--queue", "reports", "--min-workers", "2")
    assert code == 1
    assert "'emails'" not in line and "'reports'" in line


def test_max_lag(now):
    worker(now)
    TaskFactory(start_at=now - timedelta(seconds=100))
    code, line = health("--max-lag", "300")
    assert code == 0
    assert line.startswith("healthy: 1 live worker(s), lag 10")
    code, line = health("--max-lag", "30")
    assert code == 1
    assert line.startswith("unhealthy: lag 10") and line.endswith("s, more than 30 s")


def test_max_lag_of_one_queue_and_without_workers(now):
    TaskFactory(queue="emails", start_at=now - timedelta(seconds=100))
    TaskFactory(queue="reports", start_at=now - timedelta(seconds=5))
    # Claimed and scheduled tasks do not wait.
    TaskFactory(queue="reports", start_at=now - timedelta(hours=1), running=True)
    TaskFactory(queue="reports", scheduled=True)
    assert health("--queue", "reports", "--min-workers", "0", "--max-lag", "60")[0] == 0
    code, line = health("--queue", "emails", "--min-workers", "0", "--max-lag", "60")
    assert code == 1
    assert "more than 60 s" in line


def test_both_problems_are_told(now):
    TaskFactory(start_at=now - timedelta(seconds=100))
    code, line = health("--max-lag", "1")
    assert code == 1
    assert line.startswith("unhealthy: 0 live worker(s), fewer than 1; lag ")


def test_an_empty_queue_has_no_lag(now):
    worker(now)
    assert health("--max-lag", "0") == (0, "healthy: 1 live worker(s), lag 0.0 s")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-workers", "-1"], "'-1' must not be negative"),
        (["--min-workers", "two"], "'two' is not an integer"),
        (["--max-lag", "-5"], "'-5' must not be negative"),
        (["--max-lag", "soon"], "'soon' is not a number"),
        (["--database", "nope"], r"'nope' is not in settings\.DATABASES"),
        (["--min-workers", "0"], "--min-workers 0 without --max-lag checks nothing"),
        (["--queue", ""], "a queue name must not be empty"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("taskqueue_health", *args)
