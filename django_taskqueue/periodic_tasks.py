"""Declaring periodic tasks: the ``@periodic`` decorator and ``TASKQUEUE["SCHEDULE"]``.

:func:`declared` gives every schedule of this deployment; the worker fires them
(:mod:`~django_taskqueue.worker.scheduler`). What a schedule is, and when its ticks
come due, is :mod:`~django_taskqueue.schedules`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from .schedules import (
    DEFAULT_GRACE,
    CatchUp,
    Schedule,
    ScheduleError,
    check_every,
    task_label_of,
)

T = TypeVar("T")

_declared: dict[str, Schedule] = {}


def periodic(
    cron: str | None = None,
    *,
    every: timedelta | float | None = None,
    name: str | None = None,
    task: str | None = None,
    arguments: Mapping[str, Any] | None = None,
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    queue: str | None = None,
    priority: int | None = None,
    timezone: str | None = None,
    catch_up: CatchUp = "latest",
    grace: timedelta | None = DEFAULT_GRACE,
    tick_argument: str | None = None,
) -> Callable[[T], T]:
    """Enqueue the decorated consumer (or framework task) on a schedule.

    ``@periodic("0 3 * * *")`` above or below ``@consumer("cleanup")`` enqueues
    ``cleanup`` every night at 03:00 in ``timezone`` (default ``settings.TIME_ZONE``);
    ``@periodic(every=timedelta(minutes=5))`` every five minutes. ``name`` identifies the
    schedule (default: the task's name); ``task`` picks one name of a consumer that has
    several. ``tick_argument`` names an argument that receives the tick's time (ISO
    8601, UTC). See docs/periodic.md for ``catch_up`` and ``grace``.
    """

    def decorator(target: T) -> T:
        target_task = task if task is not None else target
        schedule = Schedule(
            name=name or task_label_of(target_task),
            task=target_task,
            cron=cron,
            every=every if every is None else check_every(every, "@periodic"),
            arguments=dict(arguments or {}),
            args=tuple(args),
            kwargs=dict(kwargs or {}),
            queue=queue,
            priority=priority,
            timezone=timezone,
            catch_up=catch_up,
            grace=grace,
            tick_argument=tick_argument,
        )
        _declared[schedule.name] = schedule
        return target

    return decorator


def from_settings(name: str, entry: Any) -> Schedule:
    """A schedule from one ``TASKQUEUE["SCHEDULE"]`` entry."""
    if not isinstance(entry, Mapping):
        raise ScheduleError(f"TASKQUEUE['SCHEDULE'][{name!r}] must be a dict, not {entry!r}")
    known = {
        "task",
        "cron",
        "every",
        "arguments",
        "args",
        "kwargs",
        "queue",
        "priority",
        "timezone",
        "catch_up",
        "grace",
        "tick_argument",
    }
    unknown = set(entry) - known
    if unknown:
        raise ScheduleError(
            f"TASKQUEUE['SCHEDULE'][{name!r}] has unknown key(s) "
            f"{', '.join(sorted(map(repr, unknown)))}; the keys are {', '.join(sorted(known))}"
        )
    if "task" not in entry:
        raise ScheduleError(f"TASKQUEUE['SCHEDULE'][{name!r}] needs 'task'")
    values = dict(entry)
    if values.get("every") is not None:
        values["every"] = check_every(values["every"], f"schedule {name!r}")
    if isinstance(values.get("grace"), int | float) and not isinstance(values["grace"], bool):
        values["grace"] = timedelta(seconds=values["grace"])
    values["args"] = tuple(values.get("args", ()))
    return Schedule(name=name, **values)


def decorated() -> list[Schedule]:
    """The schedules declared with ``@periodic``."""
    return list(_declared.values())


def declared() -> dict[str, Schedule]:
    """Every schedule of this deployment by name: ``@periodic`` ones, then settings'
    (a settings entry replaces a decorator's of the same name)."""
    from .conf import conf

    schedules = dict(_declared)
    for name, entry in conf.SCHEDULE.items():
        schedules[name] = from_settings(name, entry)
    return schedules
