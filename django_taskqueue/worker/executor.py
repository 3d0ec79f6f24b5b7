"""What an executor thread of the worker does: take claimed tasks, run each through its
consumers, and hand the outcomes back to the coordinator."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..connections import ThreadConnections
from ..registry import ConsumerRegistry, run_task
from ..results import Error, Failure, Result
from ..signals import send_logged, task_finished, task_started
from .logs import RUN_TIMES

if TYPE_CHECKING:
    from ..models import Task
    from .coordinator import Worker

logger = logging.getLogger("django_taskqueue")

# A thread idle this long pings its connections before its next task: the database may
# have dropped them meanwhile (a restart, an idle timeout) without the coordinator's
# own connection noticing.
IDLE_CHECK = 1.0


def run_executor(worker: Worker) -> None:
    """The loop of one executor thread, until the coordinator hands it ``None``."""
    # Its pings get a deadline: a half-open connection never answers.
    conns = ThreadConnections(watch=worker.watchdog.watch)
    outages_seen = worker._outages
    ready, running, done, wake = worker._ready, worker._running, worker._done, worker._wake
    limits = worker.limits
    task = None
    idle_since = time.monotonic()
    try:
        while True:
            task = ready.get()
            if task is None:
                return
            if not wake.is_set() and worker._maybe_more and ready.qsize() <= worker._low_water:
                wake.set()  # room to claim more while this task runs
            if outages_seen != worker._outages or time.monotonic() - idle_since > IDLE_CHECK:
                outages_seen = worker._outages
                conns.check()
            conns.start_of_task()
            running[task.pk] = task
            limits.start(task, worker.consumers.time_limit(task))
            result = execute(task, worker.consumers)
            if limits.end(task):
                done.append((task, result))
            running.pop(task.pk, None)
            task = None
            if not wake.is_set() and (len(done) == 1 or not running or worker._stopping.is_set()):
                # The first run to acknowledge (the coordinator batches the rest),
                # or the last one running.
                wake.set()
            conns.end_of_task()
            idle_since = time.monotonic()
    except BaseException as exc:
        # Whatever kills the thread (the coordinator starts another), its task gets
        # an outcome: an error, retried as usual.
        if task is not None and limits.end(task):
            running.pop(task.pk, None)
            done.append((task, Error(f"the executor thread running this task died: {exc!r}")))
            wake.set()
        raise
    finally:
        conns.close()


def execute(task: Task, consumers: ConsumerRegistry) -> Result:
    """Run one task between the task_started and task_finished signals; leave how long
    it waited for a thread and how long it ran on the task, for the worker's log."""
    send_logged(task_started, task=task)
    started = time.monotonic()
    waited = max(0.0, time.time() - task.start_at.timestamp())
    result = run_task(task, consumers)
    task.__dict__[RUN_TIMES] = (waited, time.monotonic() - started)
    if isinstance(result, Failure):
        logger.debug("task %s (%s) failed for good: %s", task.pk, task.name, result.describe())
    send_logged(task_finished, task=task, result=result)
    return result
