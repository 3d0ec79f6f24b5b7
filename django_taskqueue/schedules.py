"""Periodic tasks: schedules declared with ``@periodic`` or in ``TASKQUEUE["SCHEDULE"]``,
and the ticks they come due at.

A schedule names what to enqueue (a consumer's task name, or a task of Django's tasks
framework) and when: a cron expression read in a time zone, or a fixed interval. Every
worker takes part in firing them (:mod:`~django_taskqueue.worker.scheduler`); the
database decides which worker enqueues each tick, so each tick is enqueued once.
Cron expressions are read by cronsim, whose handling of daylight saving time is cron's.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .constants import NAME_MAX_LENGTH

CatchUp = Literal["latest", "all", "skip"]
CATCH_UP_POLICIES: tuple[str, ...] = ("latest", "all", "skip")
# How late a tick may be seen and still fire, unless a schedule says otherwise.
DEFAULT_GRACE = timedelta(hours=1)
# With catch_up="skip", a tick seen later than this was missed: it does not fire.
SKIP_WINDOW = timedelta(minutes=1)
# With catch_up="all", ticks fired in one pass of a worker; the rest fire in the next.
MAX_TICKS_PER_PASS = 100
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_TICK = timedelta(microseconds=1)


class ScheduleError(ImproperlyConfigured):
    """A schedule is declared wrongly; the message names the schedule and the problem."""


@dataclass(frozen=True)
class Schedule:
    """One periodic task: what to enqueue, and when.

    ``task`` is a task name with a registered consumer, a function decorated with
    ``@consumer``, a task of Django's tasks framework, or the dotted path of one.
    ``arguments`` are a consumer task's arguments; ``args`` and ``kwargs`` a framework
    task's. Exactly one of ``cron`` and ``every`` says when.
    """

    name: str
    task: Any
    cron: str | None = None
    every: timedelta | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    queue: str | None = None
    priority: int | None = None
    timezone: str | None = None
    catch_up: CatchUp = "latest"
    grace: timedelta | None = DEFAULT_GRACE
    tick_argument: str | None = None

    def __post_init__(self) -> None:
        where = f"schedule {self.name!r}"
        if not isinstance(self.name, str) or not 0 < len(self.name) <= NAME_MAX_LENGTH:
            raise ScheduleError(
                f"a schedule's name is a string of 1 to {NAME_MAX_LENGTH} characters, "
                f"not {self.name!r}"
            )
        if (self.cron is None) == (self.every is None):
            raise ScheduleError(f"{where}: give either a cron expression or every=, not both")
        if self.cron is not None:
            object.__setattr__(self, "cron", check_cron(self.cron, where))
        if self.every is not None:
            object.__setattr__(self, "every", check_every(self.every, where))
        self.zone()  # raises for an unknown zone
        if self.catch_up not in CATCH_UP_POLICIES:
            raise ScheduleError(
                f"{where}: catch_up must be one of {', '.join(CATCH_UP_POLICIES)}, "
                f"not {self.catch_up!r}"
            )
        if self.grace is not None and (
            not isinstance(self.grace, timedelta) or self.grace < timedelta(0)
        ):
            raise ScheduleError(f"{where}: grace must be a timedelta >= 0 or None")
        if not isinstance(self.arguments, Mapping):
            raise ScheduleError(f"{where}: arguments must be a dict, not {self.arguments!r}")
        if self.queue is not None and not isinstance(self.queue, str):
            raise ScheduleError(f"{where}: queue must be a string, not {self.queue!r}")
        if self.tick_argument is not None and not isinstance(self.tick_argument, str):
            raise ScheduleError(f"{where}: tick_argument must be a string")
        if self.priority is not None and (
            isinstance(self.priority, bool) or not isinstance(self.priority, int)
        ):
            raise ScheduleError(f"{where}: priority must be an integer, not {self.priority!r}")

    # What -----------------------------------------------------------------------

    @property
    def task_label(self) -> str:
        """The task as the admin shows it: its name, or a framework task's path."""
        return task_label_of(self.task)

    def resolve(self) -> tuple[Literal["consumer", "framework"], Any]:
        """("consumer", task name) or ("framework", the framework task)."""
        from .registry import registry

        target = self.task
        if isinstance(target, str):
            if registry.has_own(target):
                return "consumer", target
            if "." in target:
                with contextlib.suppress(ImportError):
                    target = import_string(target)
        framework_task = _framework_task_class()
        if framework_task is not None and isinstance(target, framework_task):
            return "framework", target
        if callable(target) and not isinstance(target, str):
            names = registry.names_of(target)
            if len(names) == 1:
                return "consumer", names[0]
            if names:
                raise ScheduleError(
                    f"schedule {self.name!r}: {self.task_label} consumes "
                    f"{', '.join(map(repr, names))}; say which with @periodic(..., task=NAME)"
                )
        raise ScheduleError(
            f"schedule {self.name!r}: no consumer is registered for {self.task_label!r}, and "
            "it is not a task of Django's tasks framework (give a task name, a function "
            "decorated with @consumer, or the dotted path of an @task function)"
        )

    def enqueuer(self, using: str, tick: datetime) -> Callable[[], uuid.UUID | None]:
        """A function that enqueues the run of ``tick`` on database ``using`` and
        returns its id; it raises :class:`ScheduleError` if the task cannot be found or
        goes to another database."""
        kind, target = self.resolve()
        extra = {self.tick_argument: tick.isoformat()} if self.tick_argument else {}
        if kind == "consumer":
            from .publishing import enqueue

            def enqueue_consumer_task() -> uuid.UUID | None:
                task = enqueue(
                    target,
                    {**self.arguments, **extra},
                    queue=self.queue,
                    priority=self.priority,
                    using=using,
                )
                return None if task is None else task.pk

            return enqueue_consumer_task
        changes: dict[str, Any] = {}
        if self.queue is not None:
            changes["queue_name"] = self.queue
        if self.priority is not None:
            changes["priority"] = self.priority
        framework_task = target.using(**changes) if changes else target
        backend = framework_task.get_backend()
        if getattr(backend, "database", None) != using:  # a TaskQueueBackend's database
            raise ScheduleError(
                f"schedule {self.name!r}: {self.task_label} goes to task backend "
                f"{framework_task.backend!r}, which is not a TaskQueueBackend on database "
                f"{using!r}; its ticks could not be enqueued once"
            )

        def enqueue_framework_task() -> uuid.UUID | None:
            result = framework_task.enqueue(*self.args, **{**self.kwargs, **extra})
            return uuid.UUID(str(result.id))

        return enqueue_framework_task

    # When -----------------------------------------------------------------------

    @property
    def expression(self) -> str:
        """The cron expression, or ``every N seconds``: what the admin shows."""
        if self.cron is not None:
            return self.cron
        assert self.every is not None
        return f"every {int(self.every.total_seconds())}s"

    @property
    def zone_name(self) -> str:
        return self.timezone or settings.TIME_ZONE or "UTC"

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(
                f"schedule {self.name!r}: unknown time zone {self.zone_name!r}"
            ) from None

    def ticks_after(self, after: datetime) -> Iterator[datetime]:
        """The ticks later than ``after``, in order, as aware UTC datetimes."""
        if self.every is not None:
            seconds = int(self.every.total_seconds())
            # Multiples of the interval since the epoch: every worker agrees.
            step = math.floor(after.timestamp() / seconds) + 1
            while True:
                yield datetime.fromtimestamp(step * seconds, UTC)
                step += 1
        for tick in CronSim(_cron(self.cron), after.astimezone(self.zone())):
            yield tick.astimezone(UTC)

    def latest_tick(self, now: datetime) -> datetime | None:
        """The latest tick at or before ``now``."""
        if self.every is not None:
            seconds = int(self.every.total_seconds())
            return datetime.fromtimestamp(math.floor(now.timestamp() / seconds) * seconds, UTC)
        local = (now + _TICK).astimezone(self.zone())
        for tick in CronSim(_cron(self.cron), local, reverse=True):
            return tick.astimezone(UTC)
        return None  # pragma: no cover - cronsim gives up on expressions never due

    def next_tick(self, after: datetime) -> datetime:
        return next(self.ticks_after(after))

    def plan(self, last: datetime, now: datetime) -> tuple[list[datetime], datetime | None]:
        """What to do at ``now`` when every tick up to ``last`` was dealt with.

        Returns the ticks to fire, oldest first, and the boundary to move ``last`` to
        without firing (ticks missed for good under the catch-up policy), or None.
        """
        if self.catch_up == "all":
            start = last if self.grace is None else max(last, now - self.grace)
            fire: list[datetime] = []
            for tick in self.ticks_after(start):
                if tick > now or len(fire) == MAX_TICKS_PER_PASS:
                    break
                fire.append(tick)
            return fire, (start if start > last and not fire else None)
        latest = self.latest_tick(now)
        if latest is None or latest <= last:
            return [], None
        window = SKIP_WINDOW if self.catch_up == "skip" else self.grace
        if window is not None and now - latest > window:
            return [], latest
        return [latest], None


def _framework_task_class() -> type | None:
    try:
        from .framework import FrameworkTask
    except ImportError:  # Django 5.2 without the django-tasks backport
        return None
    return FrameworkTask


def _cron(expression: str | None) -> str:
    assert expression is not None
    return ALIASES.get(expression.strip().lower(), expression)


def check_cron(expression: Any, where: str) -> str:
    if not isinstance(expression, str):
        raise ScheduleError(f"{where}: the cron expression must be a string, not {expression!r}")
    try:
        CronSim(_cron(expression), datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ScheduleError(
            f"{where}: {expression!r} is not a cron expression ({exc}); give five fields "
            f"(minute hour day month weekday) or one of {', '.join(ALIASES)}"
        ) from None
    return expression


def check_every(every: Any, where: str) -> timedelta:
    if isinstance(every, int | float) and not isinstance(every, bool):
        every = timedelta(seconds=every)
    if not isinstance(every, timedelta):
        raise ScheduleError(f"{where}: every= must be a timedelta, not {every!r}")
    seconds = every.total_seconds()
    if seconds < 1 or seconds != int(seconds):
        raise ScheduleError(f"{where}: every= must be a whole number of seconds >= 1, not {every}")
    return every


def task_label_of(target: Any) -> str:
    if isinstance(target, str):
        return target
    module_path = getattr(target, "module_path", None)  # a framework task
    if isinstance(module_path, str):
        return module_path
    return f"{target.__module__}.{target.__qualname__}"
