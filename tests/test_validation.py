"""Bad input raises a clear exception naming the problem, and stores nothing."""

import math
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from django_taskqueue import InvalidTask, UnknownTaskName, enqueue, enqueue_many
from django_taskqueue.models import Task

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def nothing_stored():
    yield
    assert Task.objects.count() == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name must not be empty"),
        ({"name": "x" * 256}, "name is 256 characters long; the limit is 255"),
        ({"name": 12}, "name must be a string, not int"),
        ({"name": "*"}, "reserved for catch-all"),
        ({"arguments": [1, 2]}, "arguments must be a dict"),
        ({"arguments": "text"}, "arguments must be a dict"),
        ({"arguments": {1: "a"}}, "key 1 of type int; JSON object keys must be strings"),
        ({"arguments": {"a": {("t",): 1}}}, r"arguments\['a'\] has a key"),
        ({"arguments": {"ids": {1, 2}}}, r"arguments\['ids'\] is a set"),
        ({"arguments": {"when": timezone.now()}}, r"arguments\['when'\] is a datetime"),
        ({"arguments": {"day": date(2026, 1, 1)}}, r"arguments\['day'\] is a date"),
        ({"arguments": {"blob": b"\x00"}}, r"arguments\['blob'\] is a bytes"),
        ({"arguments": {"x": math.nan}}, r"arguments\['x'\] is nan"),
        ({"arguments": {"x": [1, math.inf]}}, r"arguments\['x'\]\[1\] is inf"),
        ({"arguments": {"x": Decimal("1.5")}}, r"arguments\['x'\] is a Decimal"),
        ({"arguments": {"x": object()}}, r"arguments\['x'\] is a object"),
        ({"priority": "1"}, "priority must be an integer, not str"),
        ({"priority": 1.5}, "priority must be an integer, not float"),
        ({"priority": True}, "priority must be an integer, not bool"),
        ({"priority": 40000}, "priority must be between -32768 and 32767"),
        ({"retry_max": -1}, "retry_max must not be negative"),
        ({"retry_max": 1.0}, "retry_max must be an integer"),
        ({"signature": ""}, "signature must not be empty"),
        ({"signature": "s" * 256}, "signature is 256 characters long"),
        ({"signature": 5}, "signature must be a string"),
        ({"queue": ""}, "queue must not be empty"),
        ({"delay_seconds": -1}, "delay_seconds must not be negative"),
        ({"delay_minutes": -0.5}, "delay_minutes must not be negative"),
        ({"delay_hours": -2}, "delay_hours must not be negative"),
        ({"delay_seconds": "5"}, "delay_seconds must be a number, not str"),
        ({"delay_seconds": math.inf}, "delay_seconds must be finite"),
        ({"delay_hours": 10**12}, "too far in the future"),
        ({"start_time": datetime(2030, 1, 1)}, "is naive; give an aware datetime"),
        ({"start_time": "2030-01-01"}, "start_time must be a datetime"),
        (
            {"start_time": timezone.now() + timedelta(hours=1), "delay_seconds": 5},
            "either start_time or a delay",
        ),
        ({"async_delay_ms": -5}, "async_delay_ms must not be negative"),
        ({"using": "nope"}, "using='nope' is not a database alias"),
    ],
)
def test_bad_input_is_refused(kwargs, message):
    kwargs = {"name": "tests.record", **kwargs}
    with pytest.raises(InvalidTask, match=message):
        enqueue(**kwargs)


def test_unknown_name_is_refused():
    with pytest.raises(UnknownTaskName, match="no consumer is registered for task name 'nope'"):
        enqueue("nope")


def test_unknown_name_accepted_when_a_catch_all_exists(consumers):
    from django_taskqueue import consumer

    @consumer("*")
    def anything(args):
        return None

    task = enqueue("whatever.name")
    assert task is not None
    Task.objects.all().delete()


def test_too_big_arguments_are_refused(taskqueue_settings):
    payload = {"data": "x" * (10 * 1024 * 1024)}
    with pytest.raises(InvalidTask, match=r"arguments take 10485771 bytes as JSON; the limit is"):
        enqueue("tests.record", payload)


def test_size_limit_is_a_setting(taskqueue_settings):
    taskqueue_settings["MAX_ARGUMENTS_SIZE"] = 20
    with pytest.raises(InvalidTask, match="the limit is 20"):
        enqueue("tests.record", {"data": "x" * 20})


def test_enqueue_many_names_the_bad_task():
    with pytest.raises(InvalidTask, match=r"task #2: priority must be an integer"):
        enqueue_many(
            [("tests.record", {}), ("tests.record", {}), {"name": "tests.record", "priority": "x"}]
        )
    with pytest.raises(InvalidTask, match="task #0 has no name"):
        enqueue_many([{"arguments": {}}])
    with pytest.raises(InvalidTask, match="task #0 must be"):
        enqueue_many(["tests.record"])
    with pytest.raises(InvalidTask, match="unexpected keyword argument 'colour'"):
        enqueue_many([{"name": "tests.record", "colour": "red"}])


def test_a_preprocessor_cannot_smuggle_bad_values(taskqueue_settings):
    taskqueue_settings["PREPROCESSORS"] = ["tests.test_validation.make_bad"]
    with pytest.raises(InvalidTask, match="priority must be an integer"):
        enqueue("tests.record")


def make_bad(task):
    task.priority = "high"
