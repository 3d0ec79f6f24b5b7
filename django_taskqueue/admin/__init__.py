"""The admin: the queue (``Task``), the failure log (``FailedTask``), the periodic
schedules (``ScheduleRecord``), the workers (``WorkerRecord``), the paused queues
(``PausedQueue``) and the results of Django's tasks framework (``TaskResultRecord``),
with actions."""

from .base import (
    ESTIMATE_ABOVE,
    ID_BATCH,
    EstimatedCountPaginator,
    QueueChangeList,
    QueueModelAdmin,
    estimated_count,
)
from .failed import FailedTaskAdmin, _requeued, _retry
from .filters import StateFilter
from .queues import PausedQueueAdmin
from .results import TaskResultAdmin
from .schedules import ScheduleAdmin
from .tasks import TaskAdmin
from .workers import WorkerAdmin

__all__ = [
    "ESTIMATE_ABOVE",
    "ID_BATCH",
    "EstimatedCountPaginator",
    "FailedTaskAdmin",
    "PausedQueueAdmin",
    "QueueChangeList",
    "QueueModelAdmin",
    "ScheduleAdmin",
    "StateFilter",
    "TaskAdmin",
    "TaskResultAdmin",
    "WorkerAdmin",
    "_requeued",
    "_retry",
    "estimated_count",
]
