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


def _circular():
    arguments = {}
    arguments["me"] = arguments
    return arguments


def _nested(depth):
    value = []
    for _ in range(depth - 1):
        value = [value]
    return value


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
        ({"async_delay_ms": math.inf}, "async_delay_ms must be finite"),
        ({"async_delay_ms": math.nan}, "async_delay_ms must be finite"),
        ({"async_delay_ms": 1e20}, "async_delay_ms=1e\\+20 is too far in the future"),
        ({"name": "tests.\x00record"}, r"name contains a NUL character"),
        (
            {"name": "tests.record\ud800"},
            r"name contains a lone surrogate \('\\ud800' at index 12\)",
        ),
        ({"signature": "s\x00"}, r"signature contains a NUL character"),
        ({"signature": "s\udfff"}, r"signature contains a lone surrogate"),
        ({"queue": "q\x00"}, r"queue contains a NUL character"),
        ({"queue": "\udc80q"}, r"queue contains a lone surrogate"),
        ({"arguments": {"s": "a\x00b"}}, r"arguments\['s'\] contains a NUL character"),
        ({"arguments": {"s": ["é\x00"]}}, r"arguments\['s'\]\[0\] contains a NUL"),
        ({"arguments": {"s": "\ud83d"}}, r"arguments\['s'\] contains a lone surrogate"),
        ({"arguments": {"k\x00": 1}}, r"arguments key 'k\\x00' contains a NUL"),
        ({"arguments": {"\udc00": 1}}, r"arguments key '\\udc00' contains a lone surrogate"),
        ({"arguments": {"n": 10**5000}}, r"arguments\['n'\] is an integer of about 5000 digits"),
        (
            {"arguments": _circular()},
            r"arguments\['me'\]\['me'\] is an object or array that contains it",
        ),
        ({"arguments": {"l": _nested(40)}}, r"nested 32 objects or arrays deep; the limit is 31"),
        ({"colour": "red"}, r"enqueue\(\) got an unknown option 'colour'; the options are: "),
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
    unknown = r"task #0: enqueue_many\(\) got an unknown option 'colour'"
    with pytest.raises(InvalidTask, match=unknown):
        enqueue_many([{"name": "tests.record", "colour": "red"}])


def test_a_preprocessor_cannot_smuggle_bad_values(taskqueue_settings):
    taskqueue_settings["PREPROCESSORS"] = ["tests.test_validation.make_bad"]
    with pytest.raises(InvalidTask, match="priority must be an integer"):
        enqueue("tests.record")


def make_bad(task):
    task.priority = "high"


def test_text_every_database_stores_is_accepted():
    # 4-byte characters (surrogate pairs in the JSON text), 31 levels, long integers,
    # and strings that only look like escapes.
    arguments = {
        "emoji": "\U0001f600 ok",
        "deep": {"l": _nested(29)},
        "wide": [{"a": [1]} for _ in range(40)],
        "n": 10**300,
        "text": "\\u0000 and \\ud800 written out",
        "\U0001f511": "key",
    }
    task = enqueue("tests.record", arguments, queue="q\u00e9", signature="s\U0001f600")
    stored = Task.objects.get(pk=task.pk)
    assert stored.arguments == arguments
    assert (stored.queue, stored.signature) == ("q\u00e9", "s\U0001f600")
    stored.delete()


def test_enqueue_many_names_an_unknown_option():
    unknown = r"task #1: enqueue_many\(\) got an unknown option 'prio'"
    with pytest.raises(InvalidTask, match=unknown):
        enqueue_many([("tests.record", {}), {"name": "tests.record", "prio": 1}])
