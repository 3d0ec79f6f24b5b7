"""Signals sent through a task's life.

Every signal is sent with ``sender`` the model class (``Task``) and ``task`` the task
row (a ``Task`` instance, which may be unsaved for tasks that run immediately).

- ``task_enqueued(task)``: the task was stored (inside the enqueuing transaction).
- ``task_started(task)``: a worker is about to run it.
- ``task_finished(task, result)``: a run ended, whatever the outcome (``result`` is a
  :class:`~django_taskqueue.results.Result`).
- ``task_failed(task, error)``: the task moved to the failure log for good.
"""

from django.dispatch import Signal

task_enqueued = Signal()
task_started = Signal()
task_finished = Signal()
task_failed = Signal()
