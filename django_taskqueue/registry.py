"""The consumer registry: which function runs which task name.

``@consumer("resize")`` registers at import time; the app's ``ready()`` imports every
installed app's ``tasks`` module so the decorators run. :func:`run_task` runs one task
through the consumers registered for its name and turns whatever happens into a
:class:`~django_taskqueue.results.Result`.
"""

from __future__ import annotations

import inspect
import math
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import async_to_sync

from .conf import conf
from .constants import CATCH_ALL, FRAMEWORK_TASK, NAME_MAX_LENGTH
from .results import Error, Failure, Ignored, Result, Success
from .retries import DEFAULT_POLICY, Backoff, RetryPolicy

if TYPE_CHECKING:
    from .models import Task

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Consumer:
    """A registered consumer function and how to call it."""

    func: Callable[..., Any]
    names: tuple[str, ...]
    wants_task: bool
    is_async: bool
    timeout: float | None = None
    retry: RetryPolicy = DEFAULT_POLICY

    @property
    def label(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"

    def __call__(self, task: Task) -> Any:
        kwargs = {"task": task} if self.wants_task else {}
        if self.is_async:
            return async_to_sync(self.func)(task.arguments, **kwargs)
        return self.func(task.arguments, **kwargs)


class ConsumerRegistry:
    """Consumers by task name, in registration order; catch-alls under ``"*"``.

    ``_registry`` maps names to tuples and is replaced, never mutated in place, so
    Django's ``autodiscover_modules(register_to=...)`` can roll it back by copy.
    """

    def __init__(self) -> None:
        self._registry: dict[str, tuple[Consumer, ...]] = {}

    def register(
        self,
        func: Callable[..., Any],
        names: tuple[str, ...],
        timeout: float | None = None,
        retry: RetryPolicy = DEFAULT_POLICY,
    ) -> Consumer:
        if not callable(func):
            raise TypeError(f"@consumer must decorate a function, not {func!r}")
        params = inspect.signature(func).parameters
        positional = [
            p
            for p in params.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "task"
        ]
        if not positional and not any(p.kind == p.VAR_POSITIONAL for p in params.values()):
            raise TypeError(
                f"consumer {func.__qualname__}() must take the task's arguments dict as its "
                "first parameter, e.g. def resize(args): ..."
            )
        wants_task = "task" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
        entry = Consumer(
            func=func,
            names=names,
            wants_task=wants_task,
            is_async=inspect.iscoroutinefunction(func),
            timeout=check_timeout(timeout, f"@consumer({', '.join(map(repr, names))})"),
            retry=retry,
        )
        registry = dict(self._registry)
        for name in names:
            existing = registry.get(name, ())
            # Importing a module twice must not register its consumers twice.
            existing = tuple(c for c in existing if c.label != entry.label)
            registry[name] = (*existing, entry)
        self._registry = registry
        return entry

    def consumers_for(self, name: str) -> tuple[Consumer, ...]:
        """Consumers to try for ``name``: its own first, then the catch-alls."""
        return self._registry.get(name, ()) + self._registry.get(CATCH_ALL, ())

    def time_limit(self, task: Task) -> float | None:
        """Seconds ``task`` may run: a framework task's own ``timeout``, else the
        smallest ``timeout`` of its consumers, else ``TASKQUEUE["TASK_TIMEOUT"]``."""
        if task.name == FRAMEWORK_TASK and isinstance(task.arguments, dict):
            own = task.arguments.get("timeout")
            if own is not None:
                return float(own)
        limits = [c.timeout for c in self.consumers_for(task.name) if c.timeout is not None]
        return min(limits) if limits else conf.TASK_TIMEOUT

    def retry_max(self, name: str) -> int:
        """The retry_max of a task enqueued without one: its consumer's, else the
        setting's."""
        for entry in self._registry.get(name, ()):
            if entry.retry.retry_max is not None:
                return entry.retry.retry_max
        return conf.DEFAULT_RETRY_MAX

    def retry_policy(self, task: Task) -> RetryPolicy:
        """The policy for a failed run of ``task``: its own consumer's first (a framework
        task's from its ``@task`` options and backend), else the settings'."""
        if task.name == FRAMEWORK_TASK and isinstance(task.arguments, dict):
            from .framework import retry_policy

            return retry_policy(task.arguments)
        for entry in self._registry.get(task.name, ()):
            if entry.retry is not DEFAULT_POLICY:
                return entry.retry
        return DEFAULT_POLICY

    def has_own(self, name: str) -> bool:
        """Whether ``name`` has a consumer of its own (catch-alls do not count)."""
        return name != CATCH_ALL and bool(self._registry.get(name))

    def names_of(self, func: Callable[..., Any]) -> list[str]:
        """The task names ``func`` is registered for, in registration order."""
        names: list[str] = []
        for consumers in self._registry.values():
            for entry in consumers:
                if entry.func is func:
                    names.extend(n for n in entry.names if n not in names)
        return names

    def accepts(self, name: str) -> bool:
        return bool(self.consumers_for(name))

    def names(self) -> list[str]:
        """The task names a user can enqueue: not the catch-all, not the internal name of
        Django's tasks framework."""
        return sorted(
            n
            for n, consumers in self._registry.items()
            if consumers and n not in (CATCH_ALL, FRAMEWORK_TASK)
        )


registry = ConsumerRegistry()


def check_timeout(timeout: Any, where: str) -> float | None:
    """A time limit: None, or a finite number of seconds > 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"{where}: timeout must be a number of seconds, not {timeout!r}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(
            f"{where}: timeout must be a finite number of seconds > 0, not {timeout!r}"
        )
    return float(timeout)


def consumer(
    *names: str,
    timeout: float | None = None,
    retry_max: int | None = None,
    backoff: Backoff | None = None,
    jitter: float | None = None,
    give_up_on: type[BaseException] | tuple[type[BaseException], ...] = (),
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
) -> Callable[[F], F]:
    """Register the decorated function as the consumer of tasks named ``names``.

    ``timeout`` limits how many seconds a run may take (default:
    ``TASKQUEUE["TASK_TIMEOUT"]``, no limit); see :mod:`django_taskqueue.worker.limits`.
    ``retry_max``, ``backoff``, ``jitter``, ``give_up_on`` and ``retry_on`` are the
    retry policy of its tasks (:class:`~django_taskqueue.retries.RetryPolicy`); what is
    left out comes from the settings.

    ``@consumer("*")`` registers a catch-all that sees every task; it returns
    :class:`~django_taskqueue.results.Ignored` for names it does not handle. The
    function is called as ``func(args)``, or ``func(args, task=task)`` when it has a
    ``task`` parameter (the :class:`~django_taskqueue.models.Task` row being run).
    It may be ``async def``.
    """
    if not names:
        raise TypeError('@consumer needs at least one task name, or "*" for a catch-all')
    if len(names) == 1 and callable(names[0]):
        raise TypeError('@consumer needs its task names: write @consumer("name"), not @consumer')
    for name in names:
        if not isinstance(name, str) or not name or len(name) > NAME_MAX_LENGTH:
            raise TypeError(
                f"consumer task names are strings of 1 to {NAME_MAX_LENGTH} characters, "
                f"not {name!r}"
            )

    check_timeout(timeout, "@consumer")
    policy = RetryPolicy.build(
        "@consumer",
        retry_max=retry_max,
        backoff=backoff,
        jitter=jitter,
        give_up_on=give_up_on,
        retry_on=retry_on,
    )
    if policy == DEFAULT_POLICY:
        policy = DEFAULT_POLICY  # the same object: retry_policy() tells them apart by it

    def decorator(func: F) -> F:
        registry.register(func, tuple(dict.fromkeys(names)), timeout, policy)
        return func

    return decorator


def run_task(task: Task, consumers: ConsumerRegistry | None = None) -> Result:
    """Run ``task`` through its consumers and return the outcome; never raises.

    Consumers are tried in order until one returns something other than
    :class:`Ignored`. A return value that is not a :class:`Result` counts as
    :class:`Success` carrying that value; any exception (even a ``BaseException``) becomes
    :class:`Error` with its
    traceback. When every consumer ignores the task, or none exists, the outcome is a
    :class:`Failure`: retrying would ignore it again.
    """
    chain = (consumers or registry).consumers_for(task.name)
    for entry in chain:
        try:
            outcome = entry(task)
        except BaseException as exc:
            # BaseException too (SystemExit, KeyboardInterrupt, asyncio.CancelledError,
            # GeneratorExit): what a consumer raises must not kill a worker thread.
            return Error(exc, traceback=traceback.format_exc())
        if isinstance(outcome, Ignored):
            continue
        if isinstance(outcome, Result):
            return outcome
        return Success(outcome)
    if chain:
        reason = f"every consumer of {task.name!r} ignored the task ({len(chain)} tried)"
    else:
        reason = f"no consumer is registered for task name {task.name!r}"
    return Failure(reason)
