"""The admin: the queue (``Task``) and the failure log (``FailedTask``), with actions.

Rows are never edited through a form: saving one would write every column back over a
worker's claim. The detail pages are read-only; the queue changes only through actions
(run now, cancel, retry, delete), each of which touches only the rows it applies to.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import IntegrityError, connections, transaction
from django.db.models import Count, F, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString
from django.utils.text import Truncator, capfirst
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .conf import conf
from .models import TASK_FIELD_NAMES, FailedTask, Task, TaskState
from .publishing import insert_tasks

logger = logging.getLogger("django_taskqueue")

# Above this many rows (by the planner's estimate) PostgreSQL counts come from table
# statistics: an exact COUNT(*) reads the whole table, which is most of a page's time
# once the queue holds millions of tasks.
ESTIMATE_ABOVE = 100_000

# Most ids per IN (...) list, so retrying thousands of failures stays under every
# database's limit on the parameters of one statement.
ID_BATCH = 500

T = TypeVar("T")


def _batches(items: Sequence[T], size: int = ID_BATCH) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def estimated_count(queryset: QuerySet[Any]) -> int | None:
    """The PostgreSQL planner's row estimate for ``queryset``; None on other databases."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


def state_conditions(now: datetime) -> dict[TaskState, Q]:
    """What ``TaskQuerySet.in_state()`` filters on, as conditions for one aggregate."""
    return {
        TaskState.SCHEDULED: Q(locked_until__isnull=True, start_at__gt=now),
        TaskState.READY: Q(locked_until__isnull=True, start_at__lte=now),
        TaskState.RUNNING: Q(locked_until__gte=now),
        TaskState.STALE: Q(locked_until__lt=now),
    }


class EstimatedCountPaginator(Paginator):
    """Counts a big unfiltered table from PostgreSQL's statistics instead of COUNT(*).

    Filtered lists are counted exactly: the planner's guess for a search can be far off,
    and a wrong count there would show pages that do not exist.
    """

    def __init__(self, *args: Any, estimate_above: int = ESTIMATE_ABOVE, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.estimate_above = estimate_above
        self.estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if isinstance(queryset, QuerySet) and not queryset.query.where:
            estimate = estimated_count(queryset)
            if estimate is not None and estimate > self.estimate_above:
                self.estimated = True
                return estimate
        return super().count  # type: ignore[no-any-return]


class QueueChangeList(ChangeList):
    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        # Arguments may be up to MAX_ARGUMENTS_SIZE per row and the list never shows them.
        return super().get_queryset(request, exclude_parameters).defer("arguments")

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        # What show_full_result_count does ("5 results (40 total)"), but without a second
        # COUNT(*) when the list is unfiltered, and estimated like the list on a big table.
        if self.queryset.query.where:
            paginator = self.model_admin.get_paginator(request, self.root_queryset, 1)
            self.full_result_count = paginator.count
        else:
            self.full_result_count = self.result_count
        self.show_full_result_count = True
        self.show_admin_actions = bool(self.full_result_count)


class QueueModelAdmin(admin.ModelAdmin):
    """What the queue and the failure log share: read-only rows, big-table pagination."""

    paginator = EstimatedCountPaginator
    # QueueChangeList counts the whole table itself, more cheaply.
    show_full_result_count = False
    estimate_above = ESTIMATE_ABOVE

    class Media:
        css = {"all": ["django_taskqueue/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # The queue lives where enqueue() and the worker put it.
        return super().get_queryset(request).using(conf.DATABASE)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return QueueChangeList

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # "Select task to change" would promise an edit page that is read-only.
        title = capfirst(self.model._meta.verbose_name_plural)
        return super().changelist_view(request, {"title": title, **(extra_context or {})})

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Paginator:
        return self.paginator(
            queryset,
            per_page,
            orphans,
            allow_empty_first_page,
            estimate_above=self.estimate_above,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Without an object this is the permission the actions declare; an object's page
        # is view-only (see the module docstring).
        return obj is None and super().has_change_permission(request)

    @admin.display(description=_("error"))
    def short_error(self, obj: Task | FailedTask) -> str:
        summary = obj.error_summary
        if not summary:
            return ""
        return format_html(
            '<span class="taskqueue-error" title="{}">{}</span>',
            summary,
            Truncator(summary).chars(200),
        )

    @admin.display(description=_("arguments"))
    def arguments_json(self, obj: Task | FailedTask) -> str:
        text = json.dumps(obj.arguments, indent=2, ensure_ascii=False)
        return format_html('<pre class="taskqueue-pre">{}</pre>', text)

    @admin.display(description=_("error"))
    def error_traceback(self, obj: Task | FailedTask) -> str:
        if not obj.error:
            return "-"
        return format_html('<pre class="taskqueue-pre">{}</pre>', obj.error)


class StateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(TaskState.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in TaskState.values:
            return queryset.in_state(self.value())  # type: ignore[attr-defined,no-any-return]
        return queryset


def _state_badge(state: TaskState) -> SafeString:
    return format_html(
        '<span class="taskqueue-state taskqueue-state-{}">{}</span>', state.value, state.label
    )


def _base_actions(parent: Any, request: HttpRequest, action_location: Any) -> dict[str, Any]:
    """ModelAdmin.get_actions() on Django 5.2 and 6.0, and with 6.1's action_location."""
    if action_location is None:
        return parent.get_actions(request)  # type: ignore[no-any-return]
    return parent.get_actions(request, action_location=action_location)  # type: ignore[no-any-return]


@admin.register(Task)
class TaskAdmin(QueueModelAdmin):
    list_display = ["name", "state", "priority", "start", "retry_count", "short_error"]
    list_filter = [StateFilter, "name", "priority"]
    search_fields = ["name", "signature", "error", "=id"]
    # The order of taskqueue_task_locked_idx, so the first page never sorts the whole table:
    # stale and running tasks first, then the rest in the order workers claim them.
    ordering = [F("locked_until").asc(nulls_last=True), "priority", "start_at", "pk"]
    actions = ["run_now", "cancel"]
    readonly_fields = ["state", "arguments_json", "error_traceback"]
    fieldsets = [
        (None, {"fields": ["name", "state", "queue", "priority", "signature", "id"]}),
        (_("Schedule"), {"fields": ["created_at", "start_at", "retry_count", "retry_max"]}),
        (_("Claim"), {"fields": ["lock_id", "locked_until"]}),
        (_("Arguments"), {"fields": ["arguments_json"]}),
        (_("Last error"), {"fields": ["error_traceback"]}),
    ]

    @admin.display(description=_("state"))
    def state(self, task: Task) -> SafeString:
        return _state_badge(task.state())

    @admin.display(description=_("start at"), ordering="start_at")
    def start(self, task: Task) -> SafeString:
        now = timezone.now()
        if abs((task.start_at - now).total_seconds()) < 60:
            relative = gettext("now")
        elif task.start_at > now:
            relative = gettext("in %(time)s") % {"time": timeuntil(task.start_at, now, depth=1)}
        else:
            relative = gettext("%(time)s ago") % {"time": timesince(task.start_at, now, depth=1)}
        exact = formats.localize(timezone.localtime(task.start_at))
        return format_html(
            '<time class="taskqueue-time" datetime="{}" title="{}">{}</time>',
            task.start_at.isoformat(),
            exact,
            relative,
        )

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
        extra_context = {**(extra_context or {}), "taskqueue_states": self.state_counts(request)}
        return super().changelist_view(request, extra_context)

    def state_counts(self, request: HttpRequest) -> dict[str, Any]:
        """Tasks per state over the whole queue, for the bar above the list.

        One aggregate query. On a big PostgreSQL table, ready and scheduled tasks are
        the planner's estimates instead; claimed tasks (running, stale) are few and
        counted exactly through taskqueue_task_locked_idx.
        """
        queryset = self.get_queryset(request).order_by()
        now = timezone.now()
        conditions = state_conditions(now)
        total = estimated_count(queryset)
        estimated = total is not None and total > self.estimate_above
        counted = queryset.filter(locked_until__isnull=False) if estimated else queryset
        exact = [TaskState.RUNNING, TaskState.STALE] if estimated else list(TaskState)
        counts = {
            TaskState(state): count
            for state, count in counted.aggregate(
                **{state.value: Count("pk", filter=conditions[state]) for state in exact}
            ).items()
        }
        if estimated:
            for state in (TaskState.READY, TaskState.SCHEDULED):
                counts[state] = estimated_count(queryset.in_state(state, now))
        else:
            total = sum(counts.values())
        active = request.GET.get(StateFilter.parameter_name)
        states = [
            {
                "label": _state_badge(state),
                "count": formats.number_format(counts[state], force_grouping=True),
                "estimated": state not in exact,
                "url": "?" + urlencode({StateFilter.parameter_name: state.value}),
                "active": active == state.value,
            }
            for state in (TaskState.READY, TaskState.SCHEDULED, TaskState.RUNNING, TaskState.STALE)
        ]
        return {
            "total": formats.number_format(total, force_grouping=True),
            "states": states,
            "all_active": active not in TaskState.values,
            "estimated": estimated,
            "estimate_above": formats.number_format(self.estimate_above, force_grouping=True),
        }

    @admin.action(description=_("Run selected %(verbose_name_plural)s now"), permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        """Make scheduled tasks due now. Due tasks keep their start_at, and so their turn."""
        now = timezone.now()
        queryset = queryset.order_by()
        selected = queryset.count()
        moved = queryset.scheduled(now).update(start_at=now)  # type: ignore[attr-defined]
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
            cancelled = cancellable.delete()[0]
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
            "tasks": list(cancellable.order_by(*self.ordering)[:shown]),
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


@admin.register(FailedTask)
class FailedTaskAdmin(QueueModelAdmin):
    list_display = ["name", "failed_at", "retry_count", "short_error"]
    list_filter = ["name"]
    date_hierarchy = "failed_at"
    search_fields = ["name", "signature", "error", "=task_id"]
    actions = ["retry"]
    readonly_fields = ["arguments_json", "error_traceback"]
    fieldsets = [
        (None, {"fields": ["name", "task_id", "queue", "priority", "signature"]}),
        (_("Failure"), {"fields": ["failed_at", "created_at", "retry_count", "retry_max"]}),
        (_("Arguments"), {"fields": ["arguments_json"]}),
        (_("Traceback"), {"fields": ["error_traceback"]}),
    ]

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        actions = _base_actions(super(), request, action_location)
        # Retry first: it is what this list is for.
        return dict(sorted(actions.items(), key=lambda item: item[0] == "delete_selected"))

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """A retry adds a task to the queue and removes the failure from this log."""
        opts = Task._meta
        can_add = request.user.has_perm(  # type: ignore[union-attr]
            f"{opts.app_label}.{get_permission_codename('add', opts)}"
        )
        return can_add and self.has_delete_permission(request)

    @admin.action(description=_("Retry selected %(verbose_name_plural)s"), permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[FailedTask]) -> None:
        self.retry_failures(request, queryset)

    def retry_failures(self, request: HttpRequest, queryset: QuerySet[FailedTask]) -> int:
        """Put failed tasks back on the queue, in one transaction; return how many.

        Each becomes a task with its old id, retry_count 0 and start_at now, and its row
        leaves the failure log. One whose signature is already queued stays in the log,
        as does one whose task is queued again already (retried before, or selected
        twice: the newest failure of a task is the one retried).
        """
        try:
            selected, candidates, retried = _retry(queryset, timezone.now())
        except IntegrityError:
            # Another retry of the same task committed between our check and insert.
            self.message_user(
                request,
                gettext("Nothing was retried: the same tasks were being retried at the same time."),
                messages.ERROR,
            )
            return 0
        logger.info("admin: %s put %d failed tasks back on the queue", request.user, retried)
        if retried:
            self.message_user(
                request,
                ngettext(
                    "%(count)d failed task is back on the queue.",
                    "%(count)d failed tasks are back on the queue.",
                    retried,
                )
                % {"count": retried},
                messages.SUCCESS,
            )
        if candidates > retried:
            self.message_user(
                request,
                ngettext(
                    "%(count)d failed task was skipped: a task with the same signature is "
                    "already queued. It stays in the failure log.",
                    "%(count)d failed tasks were skipped: tasks with the same signatures are "
                    "already queued. They stay in the failure log.",
                    candidates - retried,
                )
                % {"count": candidates - retried},
                messages.WARNING,
            )
        if selected > candidates:
            self.message_user(
                request,
                ngettext(
                    "%(count)d failed task was skipped: the same task is already queued "
                    "(retried before, or selected twice). It stays in the failure log.",
                    "%(count)d failed tasks were skipped: the same tasks are already queued "
                    "(retried before, or selected twice). They stay in the failure log.",
                    selected - candidates,
                )
                % {"count": selected - candidates},
                messages.WARNING,
            )
        if not selected:
            self.message_user(
                request,
                gettext("Nothing was retried: the selected failed tasks are gone."),
                messages.WARNING,
            )
        return retried

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_retry"
        view = self.admin_site.admin_view(self.retry_view)
        return [path("<path:object_id>/retry/", view, name=name), *super().get_urls()]

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The Retry button of a failed task's page: on success, go to the queued task."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_retry_permission(request):
            raise PermissionDenied
        failure = self.get_object(request, unquote(object_id))
        if failure is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if self.retry_failures(request, self.get_queryset(request).filter(pk=failure.pk)):
            return redirect("admin:django_taskqueue_task_change", failure.task_id)
        return redirect(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", failure.pk)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            "has_retry_permission": self.has_retry_permission(request),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context)


def _retry(queryset: QuerySet[FailedTask], now: datetime) -> tuple[int, int, int]:
    """Retry in one transaction; return how many were selected, tried, and stored."""
    using = queryset.db
    with transaction.atomic(using=using):
        failures = list(queryset.defer(None).order_by("-failed_at", "-pk").select_for_update())
        newest: dict[Any, FailedTask] = {}
        for failure in failures:
            newest.setdefault(failure.task_id, failure)
        queued = set()
        for ids in _batches(list(newest)):
            queued.update(Task.objects.using(using).filter(pk__in=ids).values_list("pk", flat=True))
        candidates = [f for f in newest.values() if f.task_id not in queued]
        stored = {task.pk for task in insert_tasks([_requeued(f, now) for f in candidates], using)}
        retried = [f.pk for f in candidates if f.task_id in stored]
        for ids in _batches(retried):
            FailedTask.objects.using(using).filter(pk__in=ids).delete()
    return len(failures), len(candidates), len(retried)


def _requeued(failure: FailedTask, now: datetime) -> Task:
    """The queued task a failure goes back to: the same task, with a fresh start."""
    values = {name: getattr(failure, name) for name in TASK_FIELD_NAMES}
    values.update(retry_count=0, start_at=now, lock_id=None, locked_until=None)
    return Task(id=failure.task_id, **values)
