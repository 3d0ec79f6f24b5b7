"""Validation of a task before it is stored: every check names the problem it finds."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from .conf import conf
from .constants import (
    ARGUMENTS_JSON,
    ARGUMENTS_MAX_DEPTH,
    CATCH_ALL,
    NAME_MAX_LENGTH,
    PRIORITY_MAX,
    PRIORITY_MIN,
    QUEUE_MAX_LENGTH,
    RETRY_MAX_LIMIT,
    SIGNATURE_MAX_LENGTH,
)
from .exceptions import InvalidTask

if TYPE_CHECKING:
    from .models import Task

_JSON_SCALARS = (str, int, float, bool, type(None))


def check_number(option: str, value: Any, *, integer: bool = False) -> float:
    kinds: tuple[type[int] | type[float], ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an integer" if integer else "a number"
        raise InvalidTask(f"{option} must be {kind}, not {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise InvalidTask(f"{option} must be finite, not {value!r}")
    if value < 0:
        raise InvalidTask(f"{option} must not be negative, got {value!r}")
    return value


def check_text(option: str, value: Any, max_length: int) -> str:
    if not isinstance(value, str):
        raise InvalidTask(f"{option} must be a string, not {type(value).__name__} {value!r}")
    if not value:
        raise InvalidTask(f"{option} must not be empty")
    if len(value) > max_length:
        raise InvalidTask(
            f"{option} is {len(value)} characters long; the limit is {max_length}: "
            f"{value[:40]!r}..."
        )
    if not value.isascii():
        _check_unicode(option, value)
    elif "\x00" in value:
        raise InvalidTask(f"{option} contains a NUL character (\\x00): {value[:40]!r}")
    return value


def _check_unicode(path: str, value: str) -> None:
    """Text every database stores as it is: no NUL character, no lone surrogate."""
    if "\x00" in value:
        raise InvalidTask(f"{path} contains a NUL character (\\x00): {value[:40]!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidTask(
            f"{path} contains a lone surrogate ({value[exc.start]!r} at index {exc.start}), "
            "which is not Unicode text"
        ) from None


def _check_json(value: Any, path: str, depth: int = 1, parents: tuple[int, ...] = ()) -> None:
    """Raise InvalidTask naming ``path`` if ``value`` is not JSON data every database
    stores: ``depth`` counts the objects and arrays around it."""
    if isinstance(value, str):
        _check_unicode(path, value)
        return
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            str(value)
        except ValueError:
            raise InvalidTask(
                f"{path} is an integer of about {value.bit_length() * 0.30103:.0f} digits, "
                "more than Python converts to text"
            ) from None
        return
    if isinstance(value, _JSON_SCALARS):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidTask(f"{path} is {value!r}, which JSON cannot represent")
        return
    if isinstance(value, dict | list | tuple):
        if id(value) in parents:
            raise InvalidTask(
                f"{path} is an object or array that contains it (a circular reference)"
            )
        if depth > ARGUMENTS_MAX_DEPTH:
            raise InvalidTask(
                f"{path} is nested {depth} objects or arrays deep; the limit is "
                f"{ARGUMENTS_MAX_DEPTH} (MariaDB's JSON limit, kept on every database)"
            )
        inner = (*parents, id(value))
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidTask(
                        f"{path} has a key {key!r} of type {type(key).__name__}; "
                        "JSON object keys must be strings"
                    )
                _check_unicode(f"{path} key {key[:40]!r}", key)
                _check_json(item, f"{path}[{key!r}]", depth + 1, inner)
        else:
            for index, item in enumerate(value):
                _check_json(item, f"{path}[{index}]", depth + 1, inner)
        return
    raise InvalidTask(
        f"{path} is a {type(value).__name__}, which is not JSON data "
        "(allowed: dict with string keys, list, str, int, float, bool, None)"
    )


def check_arguments(arguments: Any) -> tuple[dict[str, Any], str]:
    """Validate a task's arguments: a JSON object within MAX_ARGUMENTS_SIZE bytes.

    Returns a copy of the arguments, and their compact JSON text.
    """
    if arguments is None:
        return {}, "{}"
    if not isinstance(arguments, Mapping):
        raise InvalidTask(
            f"arguments must be a dict (a JSON object), not {type(arguments).__name__}"
        )
    arguments = dict(arguments)
    return arguments, json_text(arguments, "arguments")


def json_text(value: Any, path: str) -> str:
    """The compact JSON text of ``value`` (a task's arguments, a framework task's return
    value), within MAX_ARGUMENTS_SIZE bytes; InvalidTask naming the problem if not."""
    text = _json_text(value, path)
    # ASCII only (ensure_ascii): one byte per character.
    limit = conf.MAX_ARGUMENTS_SIZE
    if len(text) > limit:
        raise InvalidTask(
            f"{path} take{'' if path.endswith('s') else 's'} {len(text)} bytes as JSON; "
            f"the limit is {limit} (TASKQUEUE['MAX_ARGUMENTS_SIZE']). Store large data "
            "elsewhere and pass its key."
        )
    return text


def _json_text(value: Any, path: str) -> str:
    """The compact JSON text of ``value``; InvalidTask naming the problem if not JSON.

    ``json.dumps`` walks the data in C, and refuses what is not JSON data (other types,
    NaN and infinities). It converts keys that are not strings, though, so the text is
    read back and compared; and what every database refuses (NUL characters, lone
    surrogates, more than ARGUMENTS_MAX_DEPTH levels) shows in the text as escapes or
    brackets. If anything looks wrong (or fails), the walk in Python names the problem;
    it also accepts tuples, which JSON stores as lists.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        if (
            "\\u0000" not in text
            and "\\ud" not in text
            and (
                text.count("[") + text.count("{") <= ARGUMENTS_MAX_DEPTH
                or _text_depth(text) <= ARGUMENTS_MAX_DEPTH
            )
            and json.loads(text) == value
        ):
            return text
    except (TypeError, ValueError, RecursionError):
        pass
    _check_json(value, path)
    return json.dumps(value, separators=(",", ":"))


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _text_depth(text: str) -> int:
    """How deep objects and arrays nest in JSON ``text``."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def validate_task(task: Task) -> None:
    """Check every field of an unsaved task; raise InvalidTask naming the problem."""
    check_text("name", task.name, NAME_MAX_LENGTH)
    if task.name == CATCH_ALL:
        raise InvalidTask(f"{CATCH_ALL!r} is reserved for catch-all consumers")
    task.arguments, text = check_arguments(task.arguments)
    # The INSERT sends this text rather than encoding the arguments again.
    task.__dict__[ARGUMENTS_JSON] = (task.arguments, text)
    check_priority(task.priority)
    check_number("retry_max", task.retry_max, integer=True)
    if task.retry_max > RETRY_MAX_LIMIT:
        raise InvalidTask(f"retry_max must be at most {RETRY_MAX_LIMIT}, got {task.retry_max}")
    if task.signature is not None:
        check_text("signature", task.signature, SIGNATURE_MAX_LENGTH)
    check_text("queue", task.queue, QUEUE_MAX_LENGTH)
    for option in ("start_at", "created_at"):
        value = getattr(task, option)
        if not isinstance(value, datetime) or timezone.is_naive(value):
            raise InvalidTask(f"{option} must be an aware datetime, got {value!r}")


def check_priority(priority: Any) -> None:
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidTask(
            f"priority must be an integer, not {type(priority).__name__} {priority!r}"
        )
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
        raise InvalidTask(
            f"priority must be between {PRIORITY_MIN} and {PRIORITY_MAX}, got {priority}"
        )
