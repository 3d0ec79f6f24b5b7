"""The queue's admin (``Task``): state counts, the throughput chart, the worker holding
each running task, the paused queues, and the run now, cancel, pause and resume
actions."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..db import queue_db
from ..models import Task, TaskQuerySet, TaskState, WorkerRecord
from ..operations import cancel_matching
from .arguments import ArgumentsChangeList
from .base import _base_actions
from .chart import drawing, series
from .filters import NameFilter, PriorityFilter, QueueFilter, StateFilter
from .history import CHANGE, DELETION, PATH, change_logged, label
from .queues import QueuePausingAdmin, paused_list_url, paused_notice
from .task_page import TaskPageAdmin, start_html
from .workers import worker_link, worker_rows, workers

logger = logging.getLogger("django_taskqueue")

# The attribute of a listed task that holds its worker's record (None: no record).
HOLDER = "_taskqueue_holder"


def _state_badge(state: TaskState) -> SafeString:
    return format_html(
        '<span class="taskqueue-state taskqueue-state-{}">{}</span>', state.value, state.label
    )


class TaskChangeList(ArgumentsChangeList):
    """Reads the worker records once: for the chart, and the worker of each listed task."""

    worker_records: list[WorkerRecord]

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # Stopped workers' rows too: their history still counts in the chart.
        self.worker_records = worker_rows(request, self.root_queryset.db)
        holders = {r.pk: r for r in self.worker_records if r.stopped_at is None}
        for task in self.result_list:
            if task.lock_id is not None:
                setattr(task, HOLDER, holders.get(task.lock_id))


@admin.register(Task)
class TaskAdmin(TaskPageAdmin, QueuePausingAdmin):
    list_display = [
        "task_name",
        "queue",
        "state",
        "priority",
        "start",
        "retry_count",
        "worker",
        "arguments_preview",
        "short_error",
    ]
    list_filter = [StateFilter, NameFilter, QueueFilter, PriorityFilter]
    # "=": exact matches, through an index; the error text only after "error:".
    search_fields = ["name", "=signature", "=id"]
    # The order of taskqueue_task_locked_idx, so the first page never sorts the whole table:
    # stale and running tasks first, then the rest in the order workers claim them.
    ordering = [F("locked_until").asc(nulls_last=True), "priority", "start_at", "pk"]
    actions = ["run_now", "cancel", "pause_queues", "resume_queues"]
    readonly_fields = ["task_name", "state", "held_by", "arguments_json", "error_traceback"]
    fieldsets = [
        (None, {"fields": ["task_name", "state", "queue", "priority", "signature", "id"]}),
        (_("Schedule"), {"fields": ["created_at", "start_at", "retry_count", "retry_max"]}),
        (_("Claim"), {"fields": ["held_by", "locked_until"]}),
        (_("Arguments"), {"fields": ["arguments_json"]}),
        (_("Last error"), {"fields": ["error_traceback"]}),
    ]

    @admin.display(description=_("state"))
    def state(self, task: Task) -> SafeString:
        return _state_badge(task.state())

    @admin.display(description=_("start at"), ordering="start_at")
    def start(self, task: Task) -> SafeString:
        return start_html(task.start_at, timezone.now())

    def _holder(self, task: Task) -> WorkerRecord | None:
        if task.lock_id is None:
            return None
        if hasattr(task, HOLDER):
            holder: WorkerRecord | None = getattr(task, HOLDER)
            return holder
        return workers().listed().filter(pk=task.lock_id).only("id", "hostname", "pid").first()

    @admin.display(description=_("worker"))
    def worker(self, task: Task) -> SafeString | str:
        return worker_link(self._holder(task), task.lock_id)

    @admin.display(description=_("held by"))
    def held_by(self, task: Task) -> SafeString | str:
        holder = self._holder(task)
        if holder is None:
            return worker_link(None, task.lock_id)
        return format_html(
            '{} <span class="quiet">{}</span>', worker_link(holder, task.lock_id), task.lock_id
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[TaskChangeList]:
        return TaskChangeList

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        actions = _base_actions(super(), request, action_location)
        # "cancel" replaces it: it leaves running tasks alone and says so.
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        if obj is not None and obj.state() == TaskState.RUNNING:
            return False
        return super().has_delete_permission(request, obj)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        states = self.state_counts(request)
        extra_context = {
            **(extra_context or {}),
            "taskqueue_states": states,
            "taskqueue_paused": paused_notice(self.get_queryset(request).db),
            "taskqueue_paused_url": paused_list_url(request),
        }
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        changelist = context.get("cl") if isinstance(context, dict) else None
        if isinstance(context, dict) and isinstance(changelist, TaskChangeList):
            data = series(changelist.worker_records, timezone.now())
            context["taskqueue_chart_shown"] = True
            context["taskqueue_chart"] = (
                drawing(data, states["due_now"], states["due_estimated"]) if data.reported else None
            )
        return response

    def state_counts(self, request: HttpRequest) -> dict[str, Any]:
        """Tasks per state over the whole queue, for the bar above the list.

        On a big PostgreSQL table, ready and scheduled tasks are the planner's estimates.
        """
        queryset = self.get_queryset(request)
        found = queue_db(queryset.db).count_states(
            queryset, timezone.now(), self.estimate_above, self.count_limit
        )
        active = request.GET.get(StateFilter.parameter_name)
        states = [
            {
                "label": _state_badge(state),
                "count": formats.number_format(found.counts[state], force_grouping=True),
                "estimated": state in found.estimated,
                "capped": state in found.capped,
                "url": "?" + urlencode({StateFilter.parameter_name: state.value}),
                "active": active == state.value,
            }
            for state in (TaskState.READY, TaskState.SCHEDULED, TaskState.RUNNING, TaskState.STALE)
        ]
        return {
            "total": formats.number_format(found.total, force_grouping=True),
            "states": states,
            "all_active": active not in TaskState.values,
            "estimated": bool(found.estimated),
            "estimate_above": formats.number_format(self.estimate_above, force_grouping=True),
            "capped": bool(found.capped),
            "count_limit": formats.number_format(self.count_limit, force_grouping=True),
            "due_now": found.counts[TaskState.READY],
            "due_estimated": TaskState.READY in found.estimated,
        }

    @admin.action(description=_("Run selected %(verbose_name_plural)s now"), permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: TaskQuerySet) -> None:
        """Make scheduled tasks due now. Due tasks keep their start_at, and so their turn."""
        now = timezone.now()
        queryset = queryset.order_by()
        selected = queryset.count()
        moved = change_logged(
            request,
            queryset.scheduled(now),
            lambda tasks: tasks.update(start_at=now),
            CHANGE,
            gettext("Run now: due at once."),
        )
        logger.info("admin: %s moved %d scheduled tasks to run now", request.user, moved)
        if moved:
            self.message_user(
                request,
                ngettext(
                    "%(count)d scheduled task will run as soon as a worker is free.",
                    "%(count)d scheduled tasks will run as soon as a worker is free.",
                    moved,
                )
                % {"count": moved},
                messages.SUCCESS,
            )
        if selected > moved:
            self.message_user(
                request,
                ngettext(
                    "%(count)d task was left alone: only scheduled tasks can be moved, and it "
                    "is already due or running.",
                    "%(count)d tasks were left alone: only scheduled tasks can be moved, and "
                    "they are already due or running.",
                    selected - moved,
                )
                % {"count": selected - moved},
                messages.WARNING,
            )

    @admin.action(description=_("Cancel selected %(verbose_name_plural)s"), permissions=["delete"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Task]) -> HttpResponse | None:
        """Delete the selected tasks that are not running, after a confirmation page.

        A running task cannot be stopped from here: its consumer is executing in a
        worker. Deleting its row would only throw away the run's outcome (no retry, no
        failure log), so running tasks are skipped.
        """
        now = timezone.now()
        queryset = queryset.order_by()
        cancellable = queryset.filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        running = queryset.filter(locked_until__gte=now).count()
        if request.POST.get("post") == "yes":
            cancelled = change_logged(
                request,
                cancellable,
                lambda tasks: cancel_matching(tasks).cancelled,
                DELETION,
                gettext("Cancelled."),
            )
            logger.info("admin: %s cancelled %d tasks", request.user, cancelled)
            if cancelled:
                self.message_user(
                    request,
                    ngettext(
                        "Cancelled %(count)d task.",
                        "Cancelled %(count)d tasks.",
                        cancelled,
                    )
                    % {"count": cancelled},
                    messages.SUCCESS,
                )
            self._running_skipped(request, running)
            return None
        count = cancellable.count()
        if not count:
            self._running_skipped(request, running)
            return None
        shown = 20
        context = {
            **self.admin_site.each_context(request),
            "title": _("Cancel tasks?"),
            "opts": self.model._meta,
            "media": self.media,
            "count": count,
            "running": running,
            "tasks": [
                (pk, label(name, path))
                for pk, name, path in cancellable.order_by(*self.ordering).values_list(
                    "pk", "name", PATH
                )[:shown]
            ],
            "more": max(0, count - shown),
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across") == "1",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/django_taskqueue/task/cancel_confirmation.html", context
        )

    def _running_skipped(self, request: HttpRequest, running: int) -> None:
        if running:
            self.message_user(
                request,
                ngettext(
                    "%(count)d running task was not cancelled: a worker is running it now. "
                    "Cancel it once its run ends.",
                    "%(count)d running tasks were not cancelled: workers are running them now. "
                    "Cancel them once their runs end.",
                    running,
                )
                % {"count": running},
                messages.WARNING,
            )
