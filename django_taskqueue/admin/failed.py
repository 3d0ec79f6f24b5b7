"""The failure log's admin (``FailedTask``): the retry action, button and transaction."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import operations
from ..models import FailedTask, Task
from .arguments import ArgumentsAdmin
from .base import _base_actions
from .filters import NameFilter, QueueFilter
from .history import log_retried, retry_watch

logger = logging.getLogger("django_taskqueue")

# Failures retried per transaction: a selection of any size takes bounded memory.
RETRY_BATCH = 1000


@admin.register(FailedTask)
class FailedTaskAdmin(ArgumentsAdmin):
    list_display = [
        "task_name",
        "queue",
        "failed_at",
        "retry_count",
        "arguments_preview",
        "short_error",
    ]
    list_filter = [NameFilter, QueueFilter]
    date_hierarchy = "failed_at"
    # "=": exact matches, through an index; the error text only after "error:".
    search_fields = ["name", "=signature", "=task_id"]
    actions = ["retry"]
    readonly_fields = ["task_name", "arguments_json", "error_traceback"]
    fieldsets = [
        (None, {"fields": ["task_name", "task_id", "queue", "priority", "signature"]}),
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
        can_add = request.user.has_perm(f"{opts.app_label}.{get_permission_codename('add', opts)}")
        return can_add and self.has_delete_permission(request)

    @admin.action(description=_("Retry selected %(verbose_name_plural)s"), permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[FailedTask]) -> None:
        self.retry_failures(request, queryset)

    def retry_failures(self, request: HttpRequest, queryset: QuerySet[FailedTask]) -> int:
        """Put failed tasks back on the queue, RETRY_BATCH per transaction; return how
        many.

        Each becomes a task with its old id, retry_count 0 and start_at now, and its row
        leaves the failure log. One whose signature is already queued stays in the log,
        as does one whose task is queued again already (retried before, or selected
        twice: the newest failure of a task is the one retried).
        """
        watched = retry_watch(queryset)
        selected, candidates, retried, conflict = _retry(queryset, timezone.now())
        log_retried(request, queryset.db, watched, retried)
        if conflict and not retried:
            self.message_user(
                request,
                gettext("Nothing was retried: the same tasks were being retried at the same time."),
                messages.ERROR,
            )
            return 0
        if conflict:
            self.message_user(
                request,
                gettext("The retry stopped: the same tasks were being retried at the same time."),
                messages.ERROR,
            )
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
            self.message_user(
                request,
                gettext("Failed task %(id)s is gone: it was retried or deleted meanwhile.")
                % {"id": object_id},
                messages.WARNING,
            )
            return redirect(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
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


def _retry(queryset: QuerySet[FailedTask], now: datetime) -> tuple[int, int, int, bool]:
    """Retry the newest failures first, RETRY_BATCH per transaction, with the function
    ``taskqueue_retry`` uses (:func:`~django_taskqueue.operations.retry_failures`).
    Returns how many were selected, tried and stored, and whether a concurrent retry
    of the same tasks stopped it."""
    report = operations.retry_failures(queryset, now=now, batch_size=RETRY_BATCH)
    return report.selected, report.tried, report.retried, report.conflict


_requeued = operations.requeued
