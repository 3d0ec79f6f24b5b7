"""The list filters of the admin: tasks by state, name, queue and priority.

Their choices cost no query on the task table (a ``SELECT DISTINCT`` over it reads
every row): names come from the consumer registry and the framework tasks that are
loaded, queues from the settings, the workers' records and the paused queues. Their
facet counts ("Show counts") read a bounded number of rows (db/listing.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..conf import conf
from ..constants import DEFAULT_QUEUE, FRAMEWORK_TASK
from ..db import queue_db
from ..db.generic import state_conditions
from ..db.listing import COUNT_LIMIT
from ..models import TaskState, WorkerRecord
from ..registry import registry
from .base import count_label
from .names import framework_task_paths
from .workers import worker_rows

if TYPE_CHECKING:
    from django.contrib.admin.views.main import ChangeList
    from django.utils.functional import _StrOrPromise

BACKEND = "django_taskqueue.backends.TaskQueueBackend"


class BoundedFilter(admin.SimpleListFilter):
    """A filter whose choices are given (:meth:`lookups`) and whose rows are those
    meeting :meth:`condition`; the value of the request is kept as a choice even when
    nothing lists it, so a link to any value works."""

    def __init__(self, request: HttpRequest, params: Any, model: Any, model_admin: Any) -> None:
        # lookups() runs in SimpleListFilter.__init__ and may need the admin.
        self.model_admin = model_admin
        super().__init__(request, params, model, model_admin)
        value = self.value()
        listed = {str(key) for key, _ in self.lookup_choices}
        if value is not None and value not in listed and self.condition(value) is not None:
            self.lookup_choices.append((value, value))

    def condition(self, value: str) -> Q | None:
        """The rows of choice ``value`` (None: not a value of this filter)."""
        raise NotImplementedError

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        condition = None if value is None else self.condition(value)
        return queryset if condition is None else queryset.filter(condition)

    # The stubs say counts; Django puts whatever the dict holds in the choice's title,
    # here a count marked as an estimate or a lower bound.
    def get_facet_queryset(self, changelist: ChangeList) -> dict[str, str]:  # type: ignore[override]
        # Django counts each choice with "pk IN (its rows)" over the whole list; here
        # one query reads at most count_limit rows (and one) for every choice at once.
        filtered = changelist.get_queryset(
            self.request, exclude_parameters=self.expected_parameters()
        )
        conditions = {}
        for i, (value, _label) in enumerate(self.lookup_choices):
            condition = self.condition(str(value))
            if condition is not None:
                conditions[f"{i}__c"] = condition
        limit = getattr(self.model_admin, "count_limit", COUNT_LIMIT)
        counted = queue_db(filtered.db).facet_counts(filtered, conditions, limit)
        return {key: count_label(count) for key, count in counted.items()}


class StateFilter(BoundedFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, _StrOrPromise]]:
        return list(TaskState.choices)

    def condition(self, value: str) -> Q | None:
        if value not in TaskState.values:
            return None
        return state_conditions(timezone.now())[TaskState(value)]


class NameFilter(BoundedFilter):
    """Registered task names, and framework tasks by their function's path."""

    title = _("name")
    parameter_name = "name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, _StrOrPromise]]:
        self.names = set(registry.names())
        return [(name, name) for name in sorted(self.names | set(framework_task_paths()))]

    def condition(self, value: str) -> Q | None:
        if value in self.names:
            return Q(name=value)
        # Not a consumer's name: a framework task's path, or a name with no consumer.
        return Q(name=value) | Q(name=FRAMEWORK_TASK, arguments__path=value)


def configured_queues(using: str, records: list[WorkerRecord]) -> list[str]:
    """The queues the site names: the default one, the TASKS backends' QUEUES on this
    queue, the queues of the workers' records and the paused queues."""
    queues = {DEFAULT_QUEUE}
    for backend in getattr(settings, "TASKS", {}).values():
        if backend.get("BACKEND") == BACKEND:
            queues.update(backend.get("QUEUES", ()))
    for record in records:
        if record.stopped_at is None:
            queues.update(q for q in record.queues or () if isinstance(q, str))
    queues.update(queue_db(using).paused().values_list("queue", flat=True))
    return sorted(queues)


class QueueFilter(BoundedFilter):
    title = _("queue")
    parameter_name = "queue"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, _StrOrPromise]]:
        records = worker_rows(request, conf.DATABASE)
        return [(queue, queue) for queue in configured_queues(conf.DATABASE, records)]

    def condition(self, value: str) -> Q | None:
        return Q(queue=value)


class PriorityFilter(BoundedFilter):
    """Before, at and after the default priority; ``?priority=<n>`` for one value."""

    title = _("priority")
    parameter_name = "priority"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, _StrOrPromise]]:
        default = conf.DEFAULT_PRIORITY
        return [
            ("earlier", _("Runs earlier (< %(default)s)") % {"default": default}),
            (str(default), _("Default (%(default)s)") % {"default": default}),
            ("later", _("Runs later (> %(default)s)") % {"default": default}),
        ]

    def condition(self, value: str) -> Q | None:
        default = conf.DEFAULT_PRIORITY
        if value == "earlier":
            return Q(priority__lt=default)
        if value == "later":
            return Q(priority__gt=default)
        try:
            return Q(priority=int(value))
        except ValueError:
            return None
