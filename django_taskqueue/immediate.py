"""RUN_IMMEDIATE_PRIORITY: run urgent unsigned tasks in this process, after commit.

The pool has RUN_IMMEDIATE_WORKERS threads and room for BUFFER_SIZE waiting tasks; when
it is full the task is stored instead, so nothing is lost to a busy pool. A run that
errors is stored for a later retry like any other; a failure goes to the failure log.
Tasks waiting in the pool are lost if the process dies, which is why this is off by
default.
"""

from __future__ import annotations

import atexit
import json
import logging
import queue
import threading
from datetime import datetime

from django.db import connections, transaction
from django.utils import timezone

from .conf import conf
from .constants import ARGUMENTS_JSON
from .db import queue_db
from .lifecycle import final_error, refused_reason, requeued_copy, retry_values
from .models import Task
from .registry import run_task
from .results import Error, Failure, Requeue, Result, storable_text
from .signals import send_logged, task_failed, task_finished, task_started

logger = logging.getLogger("django_taskqueue")


def apply_outcome(task: Task, result: Result, using: str, now: datetime | None = None) -> None:
    """Store what an in-process run of an unsaved task leaves behind, if anything."""
    now = now or timezone.now()
    error = final_error(task, result)
    if error is not None:
        queue_db(using).log_failures([(task, error)], now)
        logger.error("task %s (%s) moved to the failure log", task.pk, task.name)
        send_logged(task_failed, task=task, error=error)
    elif isinstance(result, Error):
        for name, value in retry_values(task, result, now).items():
            setattr(task, name, value)
        queue_db(using).insert([task])
    elif isinstance(result, Requeue):
        queue_db(using).insert([requeued_copy(task, result, now)])


def run_in_process(task: Task, using: str) -> None:
    """Run an unsaved task and store what it leaves behind, as a worker would."""
    validated = task.__dict__.pop(ARGUMENTS_JSON, None)  # the consumer may change them
    send_logged(task_started, task=task)
    result = run_task(task)
    send_logged(task_finished, task=task, result=result)
    try:
        apply_outcome(task, result, using)
    except Exception as refused:
        # As in the worker: the task as enqueued goes to the failure log, with the reason.
        if validated is not None:
            task.arguments = json.loads(validated[1])
        apply_outcome(task, Failure(storable_text(refused_reason(result, refused))), using)


class ImmediatePool:
    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Task, str] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _ensure_started(self) -> None:
        with self._lock:
            if self._threads:
                return
            self._queue = queue.Queue(maxsize=conf.BUFFER_SIZE)
            for index in range(conf.RUN_IMMEDIATE_WORKERS):
                thread = threading.Thread(
                    target=self._loop, name=f"taskqueue-immediate-{index}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
            atexit.register(self.shutdown)

    def submit(self, task: Task, using: str) -> bool:
        """Hand ``task`` to the pool; False if the pool is full."""
        self._ensure_started()
        try:
            self._queue.put_nowait((task, using))
        except queue.Full:
            return False
        return True

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                run_in_process(*item)
            except BaseException:
                logger.exception("in-process run of a task failed to record its outcome")
            finally:
                self._queue.task_done()
                connections.close_all()

    def join(self, timeout: float = 10.0) -> None:
        """Wait until every submitted task ran (tests, and shutdown)."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        done.wait(timeout)

    def shutdown(self) -> None:
        self.join(timeout=10.0)


pool = ImmediatePool()


def run_after_commit(task: Task, using: str) -> None:
    """Once the caller's transaction commits, run ``task`` in the pool, or store it."""

    def submit() -> None:
        if not pool.submit(task, using):
            logger.info("in-process pool full; storing task %s (%s)", task.pk, task.name)
            queue_db(using).insert([task])

    transaction.on_commit(submit, using=using)
