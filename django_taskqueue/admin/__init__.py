"""The admin: the queue (``Task``) and the failure log (``FailedTask``), with actions."""

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
from .tasks import TaskAdmin

__all__ = [
    "ESTIMATE_ABOVE",
    "ID_BATCH",
    "EstimatedCountPaginator",
    "FailedTaskAdmin",
    "QueueChangeList",
    "QueueModelAdmin",
    "StateFilter",
    "TaskAdmin",
    "_requeued",
    "_retry",
    "estimated_count",
]
