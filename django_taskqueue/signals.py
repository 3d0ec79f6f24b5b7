"""Signals sent through a task's life.

Every signal is sent with ``sender`` the model class (``Task``) and ``task`` the task
row (a ``Task`` instance, which may be unsaved for tasks that run immediately).

- ``task_enqueued(task)``: the task was stored (inside the enqueuing transaction).
- ``task_started(task)``: a worker is about to run it.
- ``task_finished(task, result)``: a run ended, whatever the outcome (``result`` is a
  :class:`~django_taskqueue.results.Result`).
- ``task_failed(task, error)``: the task moved to the failure log for good.
- ``task_retried(task, retry_at)``: a failed run was stored as a retry at ``retry_at``.
- ``task_timed_out(task, limit)``: a run passed its time limit of ``limit`` seconds
  (its worker stops and exits; the task runs again).

``task_started`` and ``task_finished`` are sent in the thread that runs the task, the
others by the worker's coordinator thread (or the enqueuing one), so that a receiver
can open a tracing span at ``task_started`` and end it at ``task_finished``
(docs/monitoring.md has an OpenTelemetry example).

A receiver that raises does not change what happens to the task: its error is logged
(logger ``django_taskqueue``, level ERROR, with the traceback) and the other receivers
still run. A receiver that raises a ``BaseException`` that is not an ``Exception``
(``SystemExit``, ``KeyboardInterrupt``, ``asyncio.CancelledError``) is logged the same
way, but the receivers after it are skipped for that signal.
"""

from __future__ import annotations

import logging
from typing import Any

from django.dispatch import Signal

logger = logging.getLogger("django_taskqueue")

task_enqueued = Signal()
task_started = Signal()
task_finished = Signal()
task_failed = Signal()
task_retried = Signal()
task_timed_out = Signal()

_NAMES = {
    id(task_enqueued): "task_enqueued",
    id(task_started): "task_started",
    id(task_finished): "task_finished",
    id(task_failed): "task_failed",
    id(task_retried): "task_retried",
    id(task_timed_out): "task_timed_out",
}


def send_logged(signal: Signal, *, task: Any, **kwargs: Any) -> None:
    """Send ``signal`` for ``task`` to every receiver; log the errors any of them raise."""
    # Not has_listeners(): without a sender it misses receivers connected for Task.
    if not signal.receivers:
        return
    name = _NAMES.get(id(signal), "signal")
    try:
        responses = signal.send_robust(sender=type(task), task=task, **kwargs)
    except BaseException as exc:
        # send_robust() catches Exception only: a receiver raised SystemExit,
        # KeyboardInterrupt, CancelledError..., and the receivers after it were skipped.
        logger.error("a %s receiver raised %r", name, exc, exc_info=exc)
        return
    for receiver, response in responses:
        if isinstance(response, BaseException):
            logger.error("%s receiver %r raised: %r", name, receiver, response, exc_info=response)
