"""A task's page: its Run now and Cancel buttons, and how its start time reads."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, cast

from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import dateformat, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince, timeuntil
from django.utils.translation import gettext

from ..models import Task, TaskQuerySet, TaskState
from ..operations import cancel_matching
from .arguments import ArgumentsAdmin, _path
from .history import CHANGE, DELETION, label, log_tasks

# Below this many seconds away, a start time reads in seconds: "in 50 s", "due 50 s ago".
SECONDS_BELOW = 120


def relative(moment: datetime, now: datetime) -> str:
    """When ``moment`` is from ``now``: "in 50 s", "due now", "due 3 minutes ago"."""
    delta = (moment - now).total_seconds()
    if delta > 0:
        if delta < SECONDS_BELOW:
            return gettext("in %(count)d s") % {"count": math.ceil(delta)}
        return gettext("in %(time)s") % {"time": timeuntil(moment, now, depth=1)}
    if -delta < 1:
        return gettext("due now")
    if -delta < SECONDS_BELOW:
        return gettext("due %(count)d s ago") % {"count": int(-delta)}
    return gettext("due %(time)s ago") % {"time": timesince(moment, now, depth=1)}


def elapsed(earlier: datetime, later: datetime) -> str:
    """How long from ``earlier`` to ``later``: "20 s" under two minutes, else "10 minutes"."""
    seconds = (later - earlier).total_seconds()
    if seconds < SECONDS_BELOW:
        return gettext("%(count)d s") % {"count": max(0, int(seconds))}
    return timesince(earlier, later, depth=1)


def start_html(moment: datetime, now: datetime) -> SafeString:
    """The exact time to the second, in the admin's time zone, then how far it is."""
    local = timezone.localtime(moment)
    return format_html(
        '<time class="taskqueue-time" datetime="{}">{}</time> '
        '<span class="taskqueue-relative">{}</span>',
        moment.isoformat(),
        dateformat.format(local, "Y-m-d H:i:s"),
        relative(moment, now),
    )


class TaskPageAdmin(ArgumentsAdmin):
    """Run now and Cancel on a task's page, in place of the Delete link."""

    def get_urls(self) -> list[URLPattern]:
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        site = self.admin_site
        return [
            path(
                "<path:object_id>/run-now/",
                site.admin_view(self.run_now_view),
                name=f"{prefix}_run_now",
            ),
            path(
                "<path:object_id>/cancel/",
                site.admin_view(self.cancel_view),
                name=f"{prefix}_cancel",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            # Cancel replaces Delete: it leaves a running task alone and says so.
            "show_delete": False,
            "has_run_now_permission": self.has_change_permission(request),
            "has_cancel_permission": self.has_delete_permission(request),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        task = context.get("original")
        if isinstance(task, Task):
            context["taskqueue_label"] = label(task.name, _path(task))
            context["taskqueue_scheduled"] = task.state() == TaskState.SCHEDULED
        return super().render_change_form(request, context, *args, **kwargs)

    def _task(self, request: HttpRequest, object_id: str) -> tuple[Task | None, str]:
        task = self.get_object(request, unquote(object_id))
        if task is None:
            self.message_user(
                request,
                gettext("Task %(id)s is gone: it ran, or was cancelled, meanwhile.")
                % {"id": object_id},
                messages.WARNING,
            )
            return None, ""
        return task, label(task.name, _path(task))

    def _tasks(self, request: HttpRequest, task: Task) -> TaskQuerySet:
        return cast(TaskQuerySet, self.get_queryset(request).filter(pk=task.pk).order_by())

    def _changelist(self) -> HttpResponse:
        return redirect(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")

    def _page(self, task: Task) -> HttpResponse:
        return redirect(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", task.pk)

    def run_now_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The Run now button: a scheduled task becomes due at once."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        task, name = self._task(request, object_id)
        if task is None:
            return self._changelist()
        now = timezone.now()
        if self._tasks(request, task).scheduled(now).update(start_at=now):
            log_tasks(request, [(task.pk, name)], CHANGE, gettext("Run now: due at once."))
            self.message_user(
                request,
                gettext("“%(name)s” will run as soon as a worker is free.") % {"name": name},
                messages.SUCCESS,
            )
        elif self._tasks(request, task).running(now).exists():
            self.message_user(
                request, gettext("“%(name)s” is running now.") % {"name": name}, messages.WARNING
            )
        else:
            self.message_user(
                request,
                gettext("“%(name)s” is due already: it runs when a worker is free.")
                % {"name": name},
                messages.WARNING,
            )
        return self._page(task)

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The Cancel button: a confirmation page, then the task leaves the queue,
        unless a worker is running it, which nothing here can stop."""
        if not self.has_delete_permission(request):
            raise PermissionDenied
        task, name = self._task(request, object_id)
        if task is None:
            return self._changelist()
        now = timezone.now()
        tasks = self._tasks(request, task)
        if request.method == "POST":
            # As taskqueue_cancel: a framework task's result is marked FAILED.
            if cancel_matching(tasks).cancelled:
                log_tasks(request, [(task.pk, name)], DELETION, gettext("Cancelled."))
                self.message_user(
                    request, gettext("Cancelled “%(name)s”.") % {"name": name}, messages.SUCCESS
                )
                return self._changelist()
            if not tasks.exists():
                self.message_user(
                    request,
                    gettext("“%(name)s” is gone: it ran, or was cancelled, meanwhile.")
                    % {"name": name},
                    messages.WARNING,
                )
                return self._changelist()
        if tasks.running(now).exists():
            self.message_user(request, _refused(name), messages.ERROR)
            return self._page(task)
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Cancel “%(name)s”?") % {"name": name},
            "opts": self.opts,
            "media": self.media,
            "task": task,
            "taskqueue_label": name,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/django_taskqueue/task/cancel_task.html", context)


def _refused(name: str) -> str:
    return gettext(
        "“%(name)s” was not cancelled: a worker is running it now, and a run cannot be "
        "stopped from here. If it fails and waits for a retry, cancel it then."
    ) % {"name": name}
