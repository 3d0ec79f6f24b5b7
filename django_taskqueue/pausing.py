"""Pausing queues: no worker claims a paused queue's tasks until it is resumed.

The state is a row of ``PausedQueue`` in the queue's database, so it holds for every
worker on every host and survives restarts. Workers read the paused queues once a
``POLL_INTERVAL``, and at once on PostgreSQL, where pausing sends a notification.
Tasks already running finish; enqueueing still works, and the tasks wait.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone

from .constants import QUEUE_MAX_LENGTH
from .db import queue_db
from .validation import check_text

if TYPE_CHECKING:
    from .models import PausedQueue


def pause_queue(queue: str, *, reason: str = "", using: str | None = None) -> bool:
    """Pause ``queue``; return False if it was paused already. Raises
    :class:`~django_taskqueue.exceptions.InvalidTask` for a name no task could have."""
    check_text("queue", queue, QUEUE_MAX_LENGTH)
    return queue_db(using).pause(queue, reason[:200], timezone.now())


def resume_queue(queue: str, *, using: str | None = None) -> bool:
    """Resume ``queue``; return False if it was not paused."""
    check_text("queue", queue, QUEUE_MAX_LENGTH)
    return queue_db(using).resume(queue)


def paused_queues(*, using: str | None = None) -> list[PausedQueue]:
    """The paused queues, by name."""
    return list(queue_db(using).paused())
