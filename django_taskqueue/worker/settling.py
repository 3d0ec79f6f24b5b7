"""What the worker reports of stored outcomes, and what it does with refused ones.

A batch of outcomes is written at once. If that fails while the database still
answers, one outcome in it is bad (error text the database cannot hold, arguments a
consumer changed into something that is not JSON, a due time out of range): each is
then stored on its own, and each one the database refuses moves its task to the
failure log as it is stored, with the reason. One bad outcome never holds up the
others, nor is it retried for ever while the heartbeat keeps its claim alive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import InterfaceError

from ..db import Claimant, FinishReport, QueueDatabase
from ..lifecycle import refused_reason
from ..results import Result
from ..signals import send_logged, task_failed

if TYPE_CHECKING:
    from ..models import Task

logger = logging.getLogger("django_taskqueue")


def database_answers(db: QueueDatabase, exc: BaseException) -> bool:
    """Whether the database still answers after ``exc``: then a statement failed, not
    the connection (``is_usable()`` asks the server)."""
    if isinstance(exc, InterfaceError):
        return False
    connection = db.connection
    try:
        return connection.connection is not None and connection.is_usable()
    except Exception:
        return False


def store_singly(
    db: QueueDatabase,
    claimant: Claimant,
    batch: list[tuple[Task, Result]],
    clock: Callable[[], datetime],
) -> Iterator[tuple[tuple[Task, Result], FinishReport]]:
    """Each outcome of ``batch`` with what storing it did. Raises (having stored those
    yielded) if the database stops answering."""
    for task, result in batch:
        now = clock()
        try:
            report = db.finish(claimant, [(task, result)], now)
        except Exception as refused:
            if not database_answers(db, refused):
                raise
            report = fail_refused(db, claimant, task, result, refused, now)
        yield (task, result), report


def fail_refused(
    db: QueueDatabase,
    claimant: Claimant,
    task: Task,
    result: Result,
    refused: Exception,
    now: datetime,
) -> FinishReport:
    """Move ``task`` to the failure log, as stored, saying why its outcome was refused."""
    try:
        return db.fail_stored(claimant, task, refused_reason(result, refused), now)
    except Exception as again:
        if not database_answers(db, again):
            raise
        logger.exception(
            "task %s (%s) could not be moved to the failure log either; its claim is left "
            "to expire (LOCK_TIMEOUT), which counts as a failed attempt",
            task.pk,
            task.name,
        )
        return FinishReport()


def log_report(lock_id: object, report: FinishReport) -> None:
    """Log what stored outcomes did, and send ``task_failed`` for the failed tasks."""
    for task, error in report.failed:
        logger.error(
            "task %s (%s) moved to the failure log: %s",
            task.pk,
            task.name,
            error.strip().splitlines()[0] if error.strip() else "",
        )
        send_logged(task_failed, task=task, error=error)
    if report.lost:
        logger.warning(
            "worker %s no longer held %d finished task(s): their claim expired and "
            "another worker took them over, or they were cancelled",
            lock_id,
            report.lost,
        )
