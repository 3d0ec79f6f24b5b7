"""Time limits of runs. Python cannot stop a thread, so a run past its limit gets an
error outcome (retried with backoff like any error) and its worker process stops
claiming, lets its other runs finish, records that outcome, and exits with code 3:
the stuck thread ends with the process, so the task never runs twice at once. A
supervisor (``--processes``, systemd, Kubernetes) starts a fresh process."""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING

from ..exceptions import TimeLimitExceeded
from ..results import Error, Result

if TYPE_CHECKING:
    from ..models import Task

# The worker's exit code after a run passed its time limit.
EXIT_TIME_LIMIT = 3


class TimeLimits:
    """When each limited run must end, and the outcomes of those that did not."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deadlines: dict[uuid.UUID, tuple[float, float, Task]] = {}
        self.timed_out: dict[uuid.UUID, tuple[Task, Result]] = {}

    def start(self, task: Task, limit: float | None) -> None:
        if limit is not None:
            with self._lock:
                self._deadlines[task.pk] = (time.monotonic() + limit, limit, task)

    def end(self, task: Task) -> bool:
        """A run ended: whether its own outcome counts (not once it timed out)."""
        with self._lock:
            self._deadlines.pop(task.pk, None)
            return task.pk not in self.timed_out

    def next_deadline(self) -> float | None:
        with self._lock:
            return min((d for d, _, _ in self._deadlines.values()), default=None)

    def expire(self, now: float) -> list[tuple[Task, float]]:
        """The runs past their limit, each given its error outcome."""
        expired = []
        with self._lock:
            for pk, (deadline, limit, task) in list(self._deadlines.items()):
                if deadline <= now:
                    del self._deadlines[pk]
                    error = TimeLimitExceeded(
                        f"timed out after {limit:g} s; the worker process exited so that "
                        "this run's thread cannot go on running it"
                    )
                    self.timed_out[pk] = (task, Error(error))
                    expired.append((task, limit))
        return expired

    def outcomes(self) -> list[tuple[Task, Result]]:
        with self._lock:
            return list(self.timed_out.values())
