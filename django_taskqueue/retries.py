"""Retry policies: how many attempts a task gets, how long each retry waits, and which
errors are worth another attempt.

A consumer gives its own with ``@consumer(..., retry_max=, backoff=, jitter=,
give_up_on=, retry_on=)``; what it leaves out comes from the settings
(``DEFAULT_RETRY_MAX``, ``RETRY_BACKOFF``, ``RETRY_JITTER``, ``BACKOFF_EXPONENT_CAP``).
Tasks of Django's tasks framework take the same options from ``@task(...)`` and the
backend's ``OPTIONS``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils.module_loading import import_string

from .conf import conf
from .constants import REQUEUE_MAX_DELAY, RETRY_MAX_LIMIT

logger = logging.getLogger("django_taskqueue")

# A delay is a number of seconds or a timedelta.
Delay = float | timedelta
BackoffFunction = Callable[[int, BaseException | None], Delay]
Backoff = Sequence[Delay] | BackoffFunction | str


@dataclass(frozen=True)
class RetryPolicy:
    """What happens when a run raises (or returns :class:`~django_taskqueue.Error`).

    ``backoff`` is None (2**n minutes, n the number of retries so far, capped by
    ``BACKOFF_EXPONENT_CAP``), a list of delays (the last one repeats), a function
    ``f(attempt, exception)`` of the attempt that failed (1 for the first run) returning
    a delay, or the dotted path of one. ``jitter`` spreads each delay by up to that
    fraction either way. ``give_up_on`` exceptions end the task at once; with
    ``retry_on``, only those exceptions are retried.
    """

    retry_max: int | None = None
    backoff: Backoff | None = None
    jitter: float | None = None
    give_up_on: tuple[type[BaseException], ...] = ()
    retry_on: tuple[type[BaseException], ...] | None = None

    @classmethod
    def build(
        cls,
        where: str,
        *,
        retry_max: Any = None,
        backoff: Any = None,
        jitter: Any = None,
        give_up_on: Any = (),
        retry_on: Any = None,
    ) -> RetryPolicy:
        """A checked policy; a wrong value raises ``TypeError``/``ValueError`` naming it."""
        if retry_max is not None and (
            isinstance(retry_max, bool)
            or not isinstance(retry_max, int)
            or not 0 <= retry_max <= RETRY_MAX_LIMIT
        ):
            raise ValueError(f"{where}: retry_max must be an integer >= 0, not {retry_max!r}")
        return cls(
            retry_max=retry_max,
            backoff=None if backoff is None else check_backoff(backoff, where),
            jitter=None if jitter is None else check_jitter(jitter, where),
            give_up_on=_exception_classes(give_up_on, f"{where}: give_up_on") or (),
            retry_on=_exception_classes(retry_on, f"{where}: retry_on"),
        )

    def gives_up(self, exception: BaseException | str) -> str | None:
        """Why an error ends the task at once whatever retries are left, or None."""
        if not isinstance(exception, BaseException):
            return None
        name = type(exception).__name__
        if self.give_up_on and isinstance(exception, self.give_up_on):
            return f"{name} is not retried (give_up_on)"
        if self.retry_on is not None and not isinstance(exception, self.retry_on):
            return f"{name} is not retried (retry_on names only {_names(self.retry_on)})"
        return None

    def delay(self, retry_count: int, exception: BaseException | str | None) -> timedelta:
        """The wait before the next attempt, after ``retry_count`` retries so far."""
        seconds = self._base_seconds(retry_count, exception)
        jitter = conf.RETRY_JITTER if self.jitter is None else self.jitter
        if jitter:
            seconds *= 1 + random.uniform(-jitter, jitter)
        return timedelta(seconds=min(max(0.0, seconds), REQUEUE_MAX_DELAY))

    def _base_seconds(self, retry_count: int, exception: BaseException | str | None) -> float:
        backoff = self.backoff if self.backoff is not None else conf.RETRY_BACKOFF
        if backoff is None:
            return _exponential(retry_count)
        if isinstance(backoff, str):
            backoff = import_string(backoff)
        if callable(backoff):
            failed = exception if isinstance(exception, BaseException) else None
            try:
                value = backoff(retry_count + 1, failed)
                return _seconds(value, "the backoff function's delay")
            except Exception:
                logger.exception("retry backoff %r failed; waiting 2**n minutes instead", backoff)
                return _exponential(retry_count)
        delays = list(backoff)
        return _seconds(delays[min(retry_count, len(delays) - 1)], "a backoff delay")


DEFAULT_POLICY = RetryPolicy()


def _exponential(retry_count: int) -> float:
    """The default: 2**retry_count minutes, the exponent capped."""
    return 60.0 * float(2 ** min(retry_count, conf.BACKOFF_EXPONENT_CAP))


def check_backoff(backoff: Any, where: str) -> Backoff:
    if isinstance(backoff, str):
        try:
            target = import_string(backoff)
        except ImportError as exc:
            raise ValueError(f"{where}: backoff {backoff!r} cannot be imported ({exc})") from None
        if not callable(target):
            raise ValueError(f"{where}: backoff {backoff!r} is not a function")
        return backoff
    if callable(backoff):
        return backoff  # type: ignore[no-any-return]
    if isinstance(backoff, list | tuple) and backoff:
        for delay in backoff:
            _seconds(delay, f"{where}: backoff")
        return tuple(backoff)
    raise TypeError(
        f"{where}: backoff must be a non-empty list of delays (seconds or timedelta), a "
        f"function of (attempt, exception), or its dotted path; not {backoff!r}"
    )


def check_jitter(jitter: Any, where: str) -> float:
    if (
        isinstance(jitter, bool)
        or not isinstance(jitter, int | float)
        or not math.isfinite(jitter)
        or not 0 <= jitter <= 1
    ):
        raise ValueError(f"{where}: jitter must be a fraction from 0 to 1, not {jitter!r}")
    return float(jitter)


def _seconds(delay: Any, what: str) -> float:
    if isinstance(delay, timedelta):
        delay = delay.total_seconds()
    if isinstance(delay, bool) or not isinstance(delay, int | float) or not math.isfinite(delay):
        raise TypeError(f"{what} must be a number of seconds or a timedelta, not {delay!r}")
    if delay < 0:
        raise ValueError(f"{what} must not be negative, not {delay!r}")
    return float(delay)


def _exception_classes(value: Any, where: str) -> tuple[type[BaseException], ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = (value,)
    if isinstance(value, type):
        value = (value,)
    if not isinstance(value, list | tuple):
        raise TypeError(f"{where} must be an exception class or a list of them, not {value!r}")
    classes = []
    for item in value:
        if isinstance(item, str):
            try:
                item = import_string(item)
            except ImportError as exc:
                raise ValueError(f"{where}: {item!r} cannot be imported ({exc})") from None
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(f"{where}: {item!r} is not an exception class")
        classes.append(item)
    return tuple(classes)


def _names(classes: tuple[type[BaseException], ...]) -> str:
    return ", ".join(c.__name__ for c in classes)
