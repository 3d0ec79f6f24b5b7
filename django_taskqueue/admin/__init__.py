"""The admin: the queue (``Task``), the failure log (``FailedTask``) and the periodic
schedules (``ScheduleRecord``), with actions."""

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
    "_requeued",
    "_retry",
    "estimated_count",
]
