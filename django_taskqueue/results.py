"""What a consumer returns: the outcome of one run of a task.

Returning ``None`` (or anything that is not a :class:`Result`) means :class:`Success`.
Raising an exception means :class:`Error` with that exception.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any


def describe_exception(exc: BaseException | str) -> str:
    """Traceback of a raised exception, the message of one never raised, or the text."""
    if isinstance(exc, BaseException):
        if exc.__traceback__ is not None:
            return "".join(traceback.format_exception(exc))
        return "".join(traceback.format_exception_only(exc)).strip()
    return str(exc)


@dataclass(frozen=True)
class Result:
    """Base class of the outcomes."""

    @property
    def is_successful(self) -> bool:
        """True for :class:`Success` and :class:`Requeue`: the run did its work."""
        return False


@dataclass(frozen=True)
class Success(Result):
    """The task is done; its row is deleted."""

    value: Any = None

    @property
    def is_successful(self) -> bool:
        return True


@dataclass(frozen=True)
class Error(Result):
    """The run failed but may be retried later, with exponential backoff."""

    exception: BaseException | str
    traceback: str = field(default="", compare=False)

    def describe(self) -> str:
        """The error text stored on the task: the traceback if known, else the message."""
        return self.traceback or describe_exception(self.exception)


@dataclass(frozen=True)
class Failure(Result):
    """The task failed for good: no retry, it moves to the failure log."""

    reason: BaseException | str = ""
    traceback: str = field(default="", compare=False)

    def describe(self) -> str:
        return self.traceback or describe_exception(self.reason)


@dataclass(frozen=True)
class Ignored(Result):
    """This consumer does not handle the task; the next consumer gets it."""


@dataclass(frozen=True)
class Requeue(Result):
    """The run succeeded; a fresh copy of the task is queued again.

    The copy keeps the name, arguments (with the consumer's changes), priority,
    signature, queue and retry_max; its retry_count starts at 0 and it becomes due
    ``delay_seconds`` from now.
    """

    delay_seconds: float = 0

    def __post_init__(self) -> None:
        if isinstance(self.delay_seconds, bool) or not isinstance(self.delay_seconds, int | float):
            raise TypeError("Requeue(delay_seconds=...) must be a number of seconds")
        if self.delay_seconds < 0:
            raise ValueError("Requeue(delay_seconds=...) must not be negative")

    @property
    def is_successful(self) -> bool:
        return True
