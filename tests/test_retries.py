"""Retry policies: retry_max, backoff (list, function, settings), jitter, give_up_on and
retry_on, for consumers and for tasks of Django's tasks framework."""

from datetime import timedelta

import pytest
from django.core.checks import run_checks

from django_taskqueue import Error, consumer, enqueue
from django_taskqueue.models import FailedTask, Task
from django_taskqueue.retries import RetryPolicy
from django_taskqueue.worker import Worker
from tests import framework_tasks
from tests.test_worker import Clock

pytestmark = pytest.mark.django_db(transaction=True)


class Flaky(Exception):
    pass


class Broken(Exception):
    pass


def run_once(clock):
    Worker(workers=1, burst=True, listen=False, clock=clock, grace=5).run()


def waits(task, clock, runs):
    """The wait before each retry of ``task`` over ``runs`` failed runs."""
    found = []
    for _ in range(runs):
        run_once(clock)
        row = Task.objects.get(pk=task.pk)
        found.append(row.start_at - clock.now)
        clock.now = row.start_at
    return found


def test_a_consumers_retry_max_is_the_default_of_its_tasks(consumers):
    @consumer("r.limited", retry_max=2)
    def limited(args):
        return None

    assert enqueue("r.limited").retry_max == 2
    assert enqueue("r.limited", retry_max=5).retry_max == 5  # the caller's wins
    assert enqueue("tests.noop").retry_max == 8  # DEFAULT_RETRY_MAX


def test_backoff_list_gives_each_retry_its_wait_and_the_last_repeats(consumers):
    @consumer("r.list", backoff=[5, timedelta(seconds=30), 120], retry_max=5)
    def failing(args):
        raise Flaky("again")

    task = enqueue("r.list")
    assert waits(task, Clock(), 4) == [timedelta(seconds=s) for s in (5, 30, 120, 120)]


def test_backoff_function_gets_the_attempt_and_the_exception(consumers):
    seen = []

    def backoff(attempt, exception):
        seen.append((attempt, type(exception).__name__))
        return attempt * 10

    @consumer("r.function", backoff=backoff, retry_max=3)
    def failing(args):
        raise Flaky("again")

    task = enqueue("r.function")
    assert waits(task, Clock(), 3) == [timedelta(seconds=s) for s in (10, 20, 30)]
    assert seen == [(1, "Flaky"), (2, "Flaky"), (3, "Flaky")]


def test_a_backoff_function_that_fails_falls_back_to_the_default(consumers, caplog):
    caplog.set_level("WARNING", logger="django_taskqueue")

    @consumer("r.bad_backoff", backoff=lambda attempt, exception: 1 / 0)
    def failing(args):
        raise Flaky("again")

    task = enqueue("r.bad_backoff")
    assert waits(task, Clock(), 1) == [timedelta(minutes=1)]
    assert "retry backoff" in caplog.text and "ZeroDivisionError" in caplog.text


def test_jitter_spreads_the_wait_within_its_fraction(consumers):
    @consumer("r.jitter", backoff=[100], jitter=0.5, retry_max=20)
    def failing(args):
        raise Flaky("again")

    task = enqueue("r.jitter")
    found = waits(task, Clock(), 12)
    assert all(timedelta(seconds=50) <= wait <= timedelta(seconds=150) for wait in found)
    assert len(set(found)) > 1  # not the same wait every time


def test_give_up_on_ends_the_task_at_once_and_other_errors_are_retried(consumers):
    @consumer("r.give_up", give_up_on=(Broken,), retry_max=5)
    def failing(args):
        raise (Broken if args["broken"] else Flaky)("no")

    retried = enqueue("r.give_up", {"broken": False})
    ended = enqueue("r.give_up", {"broken": True})
    run_once(Clock())
    assert Task.objects.get().pk == retried.pk
    failed = FailedTask.objects.get()
    assert failed.task_id == ended.pk
    assert "gave up after 1 attempt: Broken is not retried (give_up_on)" in failed.error


def test_retry_on_retries_only_the_exceptions_it_names(consumers):
    @consumer("r.retry_on", retry_on=Flaky, retry_max=5)
    def failing(args):
        raise (Flaky if args["flaky"] else KeyError)("x")

    retried = enqueue("r.retry_on", {"flaky": True})
    enqueue("r.retry_on", {"flaky": False})
    run_once(Clock())
    assert Task.objects.get().pk == retried.pk
    assert "KeyError is not retried (retry_on names only Flaky)" in FailedTask.objects.get().error


def test_an_error_result_without_an_exception_is_retried(consumers):
    @consumer("r.result", retry_on=Flaky, retry_max=1)
    def failing(args):
        return Error("plain message")

    task = enqueue("r.result")
    run_once(Clock())
    assert Task.objects.get(pk=task.pk).retry_count == 1


def test_settings_give_the_defaults(consumers, taskqueue_settings):
    taskqueue_settings["RETRY_BACKOFF"] = [7, 9]

    @consumer("r.settings", retry_max=3)
    def failing(args):
        raise Flaky("again")

    task = enqueue("r.settings")
    assert waits(task, Clock(), 3) == [timedelta(seconds=s) for s in (7, 9, 9)]


def test_settings_backoff_may_be_a_dotted_path(consumers, taskqueue_settings):
    taskqueue_settings["RETRY_BACKOFF"] = "tests.test_retries.three_seconds"

    @consumer("r.path")
    def failing(args):
        raise Flaky("again")

    assert waits(enqueue("r.path"), Clock(), 1) == [timedelta(seconds=3)]


def three_seconds(attempt, exception):
    return 3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retry_max": -1}, "retry_max must be an integer >= 0"),
        ({"backoff": []}, "backoff must be a non-empty list"),
        ({"backoff": [5, -1]}, "must not be negative"),
        ({"backoff": ["5s"]}, "must be a number of seconds or a timedelta"),
        ({"backoff": "no.such.function"}, "cannot be imported"),
        ({"jitter": 1.5}, "jitter must be a fraction from 0 to 1"),
        ({"give_up_on": ValueError("x")}, "must be an exception class"),
        ({"retry_on": [int]}, "is not an exception class"),
    ],
)
def test_a_wrong_policy_is_refused_when_the_consumer_is_declared(consumers, options, message):
    with pytest.raises((TypeError, ValueError), match=message):
        consumer("r.wrong", **options)


def test_wrong_retry_settings_fail_the_system_checks(taskqueue_settings):
    taskqueue_settings["RETRY_JITTER"] = 2
    messages = [m for m in run_checks() if m.id == "django_taskqueue.E033"]
    assert len(messages) == 1
    assert "jitter must be a fraction from 0 to 1" in messages[0].msg


def test_policy_delay_is_capped_and_never_negative():
    policy = RetryPolicy.build("x", backoff=lambda attempt, exception: 10**12)
    assert policy.delay(0, None) == timedelta(days=100 * 365)


def test_framework_tasks_take_their_policy_from_task_options():
    framework_tasks.give_up_on_lookup.enqueue(1)
    framework_tasks.give_up_on_lookup.enqueue(0)
    clock = Clock()
    run_once(clock)
    # KeyError is in give_up_on: FAILED at once, whatever retries were left.
    assert FailedTask.objects.get().arguments["args"] == [1]
    retried = Task.objects.get()
    assert retried.start_at - clock.now == timedelta(seconds=4)  # backoff=[4]


def test_the_backend_options_give_framework_tasks_their_policy(settings):
    settings.TASKS = {
        "default": {
            **settings.TASKS["default"],
            "OPTIONS": {
                "RETRY_MAX": 2,
                "RETRY_BACKOFF": [11],
                "RETRY_ON": ["tests.test_retries.Flaky"],
            },
        }
    }
    framework_tasks.fail.enqueue("x")
    run_once(Clock())
    failed = FailedTask.objects.get()
    assert "ValueError is not retried (retry_on names only Flaky)" in failed.error
