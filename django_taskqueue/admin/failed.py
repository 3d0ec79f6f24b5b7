"""The failure log's admin (``FailedTask``): the retry action, button and transaction."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..db import queue_db
from ..models import TASK_FIELD_NAMES, FailedTask, Task
from .base import QueueModelAdmin, _base_actions, _batches

logger = logging.getLogger("django_taskqueue")

# Failures retried per transaction: a selection of any size takes bounded memory.
RETRY_BATCH = 1000


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
        selected, candidates, retried, conflict = _retry(queryset, timezone.now())
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
    """Retry the newest failures first, RETRY_BATCH per transaction, so that a selection
    of any size takes bounded memory and short locks. Returns how many were selected,
    tried and stored, and whether a concurrent retry of the same tasks stopped it."""
    using = queryset.db
    selected = tried = stored = 0
    ordered = queryset.defer(None).order_by("-failed_at", "-pk")
    page = ordered
    while True:
        try:
            with transaction.atomic(using=using):
                failures = list(page.select_for_update()[:RETRY_BATCH])
                if not failures:
                    return selected, tried, stored, False
                counts = _retry_batch(failures, using, now)
        except IntegrityError:
            # Another retry of the same tasks committed between our check and insert.
            return selected, tried, stored, True
        selected += len(failures)
        tried += counts[0]
        stored += counts[1]
        last = failures[-1]
        page = ordered.filter(
            Q(failed_at__lt=last.failed_at) | Q(failed_at=last.failed_at, pk__lt=last.pk)
        )


def _retry_batch(failures: list[FailedTask], using: str, now: datetime) -> tuple[int, int]:
    """Retry the newest failure of each task in ``failures`` whose task is not queued
    already (a later batch then skips that task's older failures)."""
    newest: dict[Any, FailedTask] = {}
    for failure in failures:
        newest.setdefault(failure.task_id, failure)
    queued: set[uuid.UUID] = set()
    for ids in _batches(list(newest)):
        queued.update(Task.objects.using(using).filter(pk__in=ids).values_list("pk", flat=True))
    candidates = [f for f in newest.values() if f.task_id not in queued]
    stored = {task.pk for task in queue_db(using).insert([_requeued(f, now) for f in candidates])}
    retried = [f.pk for f in candidates if f.task_id in stored]
    for ids in _batches(retried):
        FailedTask.objects.using(using).filter(pk__in=ids).delete()
    return len(candidates), len(retried)


def _requeued(failure: FailedTask, now: datetime) -> Task:
    """The queued task a failure goes back to: the same task, with a fresh start."""
    values = {name: getattr(failure, name) for name in TASK_FIELD_NAMES}
    values.update(retry_count=0, start_at=now, lock_id=None, locked_until=None)
    return Task(id=failure.task_id, **values)
