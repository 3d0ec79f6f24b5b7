"""django_taskqueue: a durable background task queue kept in your Django database."""

from importlib.metadata import PackageNotFoundError, version

from .exceptions import (
    InvalidTask,
    NotReady,
    TaskQueueError,
    TaskRejected,
    TimeLimitExceeded,
    UnknownTaskName,
)
from .pausing import pause_queue, paused_queues, resume_queue
from .periodic_tasks import periodic
from .publishing import cancel, enqueue, enqueue_many
from .registry import consumer
from .results import Error, Failure, Ignored, Requeue, Result, Success

try:
    __version__ = version("django-taskqueue")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Error",
    "Failure",
    "Ignored",
    "InvalidTask",
    "NotReady",
    "Requeue",
    "Result",
    "Success",
    "TaskQueueError",
    "TaskRejected",
    "TimeLimitExceeded",
    "UnknownTaskName",
    "__version__",
    "cancel",
    "consumer",
    "enqueue",
    "enqueue_many",
    "pause_queue",
    "paused_queues",
    "periodic",
    "resume_queue",
]
