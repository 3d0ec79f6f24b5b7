"""The admin: the queue (``Task``), the failure log (``FailedTask``), the periodic
schedules (``ScheduleRecord``) and the workers (``WorkerRecord``), with actions."""

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
from .schedules import ScheduleAdmin
from .tasks import TaskAdmin
from .workers import WorkerAdmin

__all__ = [
    "ESTIMATE_ABOVE",
    "ID_BATCH",
    "EstimatedCountPaginator",
    "FailedTaskAdmin",
    "QueueChangeList",
    "QueueModelAdmin",
    "ScheduleAdmin",
    "StateFilter",
    "TaskAdmin",
    "WorkerAdmin",
    "_requeued",
    "_retry",
    "estimated_count",
]
