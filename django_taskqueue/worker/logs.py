"""The worker's log output: ``--verbosity`` mapped onto the package logger."""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..results import Error, Requeue

if TYPE_CHECKING:
    from ..db import FinishReport
    from ..models import Task
    from ..results import Result

logger = logging.getLogger("django_taskqueue")

LEVELS = {0: logging.ERROR, 1: logging.INFO, 2: logging.DEBUG, 3: logging.DEBUG}


def configure_logging(verbosity: int) -> None:
    """Map --verbosity to the package logger; log to stderr if nothing else does."""
    logger.setLevel(LEVELS.get(verbosity, logging.INFO))
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(message)s")
        )
        logger.addHandler(handler)


# Where the executor leaves a run's (seconds it waited for a thread, seconds it ran).
RUN_TIMES = "_taskqueue_run_times"
# Per-task lines at INFO while there are at most this many a second; above, the rest
# are counted into one summary line every SUMMARY_EVERY seconds.
LINES_PER_SECOND = 10
SUMMARY_EVERY = 5.0


def humanize(seconds: float) -> str:
    """``45 s``, ``2 min``, ``3 h``, ``2 days``: how far off a time is."""
    if seconds < 90:
        return f"{max(0, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h"
    return f"{round(seconds / 86400)} days"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class OutcomeLog:
    """What a worker says about its runs once their outcomes are stored.

    Each success and requeue at INFO, unless more than LINES_PER_SECOND come in a
    second: those are counted, and a summary line says how many every SUMMARY_EVERY
    seconds. Each retry is a WARNING naming the attempt and when the next one runs;
    failures are logged where they are stored (:func:`~.settling.log_report`).
    """

    def __init__(self, worker_id: object) -> None:
        self.worker_id = worker_id
        self._second = 0
        self._lines = 0
        self._quiet: dict[str, int] = {}
        self._longest_wait = 0.0
        self._quiet_since = 0.0
        self.summary_due: float | None = None

    def stored(self, batch: list[tuple[Task, Result]], report: FinishReport, now: float) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return
        failed = {task.pk for task, _ in report.failed}
        for task, result in batch:
            waited, elapsed = task.__dict__.get(RUN_TIMES, (0.0, 0.0))
            if isinstance(result, Error):
                at = report.retry_at.get(task.pk)
                if at is not None:
                    self._retried(task, result, elapsed, at)
                continue
            if task.pk in failed:
                continue
            what = "requeued" if isinstance(result, Requeue) else "succeeded"
            if self._line_allowed(now):
                logger.info("task %s (%s) %s in %.3fs", task.pk, task.name, what, elapsed)
            else:
                self._count(what, waited)
        self.flush(now)

    def _retried(self, task: Task, result: Error, elapsed: float, at: datetime) -> None:
        lines = result.describe().strip().splitlines()
        wait = (at - datetime.now(UTC)).total_seconds()
        logger.warning(
            "task %s (%s) raised after %.3fs (attempt %d of %d): %s; next attempt at %s (in %s)",
            task.pk,
            task.name,
            elapsed,
            task.retry_count + 1,
            task.retry_max + 1,
            lines[-1] if lines else "",
            at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            humanize(wait),
        )

    def _line_allowed(self, now: float) -> bool:
        second = int(now)
        if second != self._second:
            self._second, self._lines = second, 0
        self._lines += 1
        return self._lines <= LINES_PER_SECOND

    def _count(self, what: str, waited: float) -> None:
        self._quiet[what] = self._quiet.get(what, 0) + 1
        self._longest_wait = max(self._longest_wait, waited)
        if self.summary_due is None:
            self._quiet_since = time.monotonic()
            self.summary_due = self._quiet_since + SUMMARY_EVERY

    def flush(self, now: float, force: bool = False) -> None:
        """Log the summary line if one is due (or ``force``)."""
        if self.summary_due is None or (now < self.summary_due and not force):
            return
        counts = " and ".join(f"{count} {what}" for what, count in sorted(self._quiet.items()))
        count = sum(self._quiet.values())
        logger.info(
            "worker %s: %d more %s in the last %.1fs, too many for a line each (%s); the "
            "longest wait for a thread was %.3fs",
            self.worker_id,
            count,
            "task" if count == 1 else "tasks",
            now - self._quiet_since,
            counts,
            self._longest_wait,
        )
        self._quiet = {}
        self._longest_wait = 0.0
        self.summary_due = None
