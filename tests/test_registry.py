"""The consumer registry, autodiscovery, and running a task through its consumers."""

import importlib
import sys

import pytest
from django.apps import apps
from django.utils.module_loading import autodiscover_modules

from django_taskqueue import Error, Failure, Ignored, Requeue, Success, consumer
from django_taskqueue.models import Task
from django_taskqueue.registry import registry, run_task


def make_task(name, arguments=None):
    return Task(name=name, arguments=arguments or {})


def test_autodiscovery_registered_the_test_apps_tasks():
    assert "tests.record" in registry.names()
    assert [c.label for c in registry.consumers_for("tests.record")] == ["tests.tasks.record_run"]


def test_reimporting_a_tasks_module_does_not_register_twice():
    module = importlib.import_module("tests.tasks")
    importlib.reload(module)
    assert len(registry.consumers_for("tests.noop")) == 1


def test_a_broken_tasks_module_raises_and_rolls_back(consumers, tmp_path, monkeypatch):
    package = tmp_path / "brokenapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(
        "from django_taskqueue import consumer\n"
        "@consumer('broken.first')\n"
        "def first(args): pass\n"
        "import does_not_exist_anywhere\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    app_config = apps.app_configs["tests"]
    monkeypatch.setattr(app_config, "module", importlib.import_module("brokenapp"))
    monkeypatch.setattr(app_config, "name", "brokenapp")
    try:
        with pytest.raises(ModuleNotFoundError, match="does_not_exist_anywhere"):
            autodiscover_modules("tasks", register_to=registry)
        assert "broken.first" not in registry.names()
    finally:
        sys.modules.pop("brokenapp.tasks", None)
        sys.modules.pop("brokenapp", None)


def test_decorator_refuses_bad_use():
    with pytest.raises(TypeError, match="needs at least one task name"):
        consumer()
    with pytest.raises(TypeError, match=r'write @consumer\("name"\)'):
        consumer(lambda args: None)
    with pytest.raises(TypeError, match="strings of 1 to 255"):
        consumer("")
    with pytest.raises(TypeError, match="must take the task's arguments"):
        consumer("x")(lambda: None)


def test_return_values_map_to_results(consumers):
    @consumer("r.none")
    def none(args):
        return None

    @consumer("r.value")
    def value(args):
        return 42

    @consumer("r.requeue")
    def requeue(args):
        return Requeue(delay_seconds=5)

    @consumer("r.failure")
    def failure(args):
        return Failure("bad data")

    assert run_task(make_task("r.none")) == Success()
    assert run_task(make_task("r.value")) == Success(42)
    assert run_task(make_task("r.requeue")) == Requeue(delay_seconds=5)
    assert run_task(make_task("r.failure")) == Failure("bad data")


def test_exceptions_become_errors_with_traceback(consumers):
    @consumer("r.raise")
    def boom(args):
        raise KeyError("missing")

    result = run_task(make_task("r.raise"))
    assert isinstance(result, Error)
    assert isinstance(result.exception, KeyError)
    text = result.describe()
    assert "Traceback (most recent call last)" in text
    assert "KeyError: 'missing'" in text
    assert "in boom" in text


def test_returned_error_without_traceback_describes_itself():
    result = Error(RuntimeError("nope"))
    assert result.describe() == "RuntimeError: nope"
    assert Error("plain text").describe() == "plain text"


def test_multi_name_consumer_gets_the_task(consumers):
    seen = []

    @consumer("m.a", "m.b")
    def both(args, task):
        seen.append((task.name, args["n"]))

    run_task(make_task("m.a", {"n": 1}))
    run_task(make_task("m.b", {"n": 2}))
    assert seen == [("m.a", 1), ("m.b", 2)]


def test_ignored_passes_to_the_next_consumer_then_catch_all(consumers):
    order = []

    @consumer("c.x")
    def first(args):
        order.append("first")
        return Ignored()

    @consumer("c.x")
    def second(args):
        order.append("second")
        return Ignored()

    @consumer("*")
    def catch_all(args, task):
        order.append("catch_all")
        if task.name == "c.x":
            return Success("caught")
        return Ignored()

    assert run_task(make_task("c.x")) == Success("caught")
    assert order == ["first", "second", "catch_all"]


def test_all_ignore_is_a_failure(consumers):
    @consumer("c.none")
    def nope(args):
        return Ignored()

    result = run_task(make_task("c.none"))
    assert isinstance(result, Failure)
    assert "every consumer of 'c.none' ignored the task (1 tried)" in result.describe()
    assert (
        "no consumer is registered for task name 'unknown'"
        in run_task(make_task("unknown")).describe()
    )


def test_async_consumer(consumers):
    @consumer("c.async")
    async def coro(args, task):
        args["seen"] = task.name
        return Requeue()

    task = make_task("c.async")
    assert run_task(task) == Requeue()
    assert task.arguments == {"seen": "c.async"}


def test_consumer_changes_to_arguments_stay_on_the_task(consumers):
    @consumer("c.step")
    def step(args):
        args["position"] = args.get("position", 0) + 10

    task = make_task("c.step", {"position": 1})
    run_task(task)
    assert task.arguments == {"position": 11}


def test_is_successful():
    assert Success().is_successful and Requeue().is_successful
    for result in (Error("x"), Failure("x"), Ignored()):
        assert not result.is_successful


def test_requeue_validates_its_delay():
    with pytest.raises(ValueError, match="must not be negative"):
        Requeue(delay_seconds=-1)
    with pytest.raises(TypeError, match="number of seconds"):
        Requeue(delay_seconds="5")


def test_autodiscover_setting_picks_the_module_name(consumers, settings):
    sys.modules.pop("tests.consumers_alt", None)
    settings.TASKQUEUE = {"AUTODISCOVER": None}
    apps.get_app_config("django_taskqueue").ready()
    assert "tests.consumers_alt" not in sys.modules
    settings.TASKQUEUE = {"AUTODISCOVER": "consumers_alt"}
    apps.get_app_config("django_taskqueue").ready()
    assert "tests.alt" in registry.names()
    sys.modules.pop("tests.consumers_alt", None)


def test_sys_exit_in_a_consumer_is_an_error(consumers):
    @consumer("r.exit")
    def leaves(args):
        sys.exit(3)

    result = run_task(make_task("r.exit"))
    assert isinstance(result, Error)
    assert isinstance(result.exception, SystemExit)
