"""What a consumer returns: the outcome of one run of a task.

Returning ``None`` (or anything that is not a :class:`Result`) means :class:`Success`.
Raising an exception means :class:`Error` with that exception.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass, field
from typing import Any

from .constants import ERROR_MAX_LENGTH, REQUEUE_MAX_DELAY


def describe_exception(exc: BaseException | str) -> str:
    """Traceback of a raised exception, the message of one never raised, or the text."""
    if isinstance(exc, BaseException):
        if exc.__traceback__ is not None:
            return "".join(traceback.format_exception(exc))
        return "".join(traceback.format_exception_only(exc)).strip()
    return str(exc)


def storable_text(text: str, limit: int = ERROR_MAX_LENGTH) -> str:
    """``text`` as every database stores it: NUL characters and lone surrogates written
    as escapes, and at most ``limit`` characters, keeping the end."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        cut = len(text) - (limit - 80)  # room for the note
        text = f"[... the first {cut} characters of this text were cut ...]\n{text[cut:]}"
    return text


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
        delay = self.delay_seconds
        if isinstance(delay, bool) or not isinstance(delay, int | float):
            raise TypeError(
                f"Requeue(delay_seconds=...) must be a number of seconds, not "
                f"{type(delay).__name__} {delay!r}"
            )
        if not math.isfinite(delay):
            raise ValueError(f"Requeue(delay_seconds=...) must be finite, not {delay!r}")
        if delay < 0:
            raise ValueError(f"Requeue(delay_seconds=...) must not be negative, got {delay!r}")
        if delay > REQUEUE_MAX_DELAY:
            raise ValueError(
                f"Requeue(delay_seconds=...) must be at most {REQUEUE_MAX_DELAY} "
                f"(about 100 years), got {delay!r}"
            )

    @property
    def is_successful(self) -> bool:
        return True
