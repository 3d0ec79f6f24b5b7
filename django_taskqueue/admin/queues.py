"""Paused queues in the admin: their own list (``PausedQueue``), where adding a row pauses
a queue and removing it resumes the queue, the task list's pause and resume actions, and
the notice above the task list while queues are paused.

Every change goes through :mod:`django_taskqueue.pausing`, so PostgreSQL workers hear of
it at once, and is written to the admin's history.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..conf import conf
from ..constants import QUEUE_MAX_LENGTH
from ..exceptions import InvalidTask
from ..models import PausedQueue
from ..pausing import pause_queue, paused_queues, resume_queue
from ..validation import check_text
from .base import QueueModelAdmin, _base_actions
from .history import ADDITION, DELETION, log_objects
from .task_page import elapsed, start_html


def _has_perm(request: HttpRequest, action: str) -> bool:
    opts = PausedQueue._meta
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")


def _names(queues: list[str]) -> str:
    return ", ".join(queues)


def paused_notice(using: str) -> list[dict[str, Any]]:
    """The paused queues, for the notice above the task list."""
    now = timezone.now()
    return [
        {
            "queue": record.queue,
            "since": elapsed(record.paused_at, now),
            "reason": record.reason,
        }
        for record in paused_queues(using=using)
    ]


def paused_list_url(request: HttpRequest) -> str | None:
    if not _has_perm(request, "view") and not _has_perm(request, "delete"):
        return None
    return reverse("admin:django_taskqueue_pausedqueue_changelist")


class PausedQueueForm(forms.ModelForm):  # type: ignore[type-arg]  # generic in stubs only
    class Meta:
        model = PausedQueue
        fields = ["queue", "reason"]

    def validate_unique(self) -> None:
        pass  # clean_queue() asks the queue's database, which may not be the default

    def clean_queue(self) -> str:
        queue: str = self.cleaned_data["queue"]
        try:
            check_text("queue", queue, QUEUE_MAX_LENGTH)
        except InvalidTask as exc:
            raise ValidationError(str(exc)) from None
        if PausedQueue.objects.using(conf.DATABASE).filter(queue=queue).exists():
            raise ValidationError(gettext("This queue is paused already."))
        return queue


@admin.register(PausedQueue)
class PausedQueueAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic in stubs only
    form = PausedQueueForm
    list_display = ["queue", "paused", "reason"]
    search_fields = ["queue", "reason"]
    actions = ["resume"]
    fields = ["queue", "reason"]

    class Media:
        css = {"all": ["django_taskqueue/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[PausedQueue]:
        return super().get_queryset(request).using(conf.DATABASE)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("queue", "reason") if obj is None else ("queue", "paused", "reason")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [] if obj is None else ["queue", "paused", "reason"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a pause is added or removed, never edited

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        actions = _base_actions(super(), request, action_location)
        # "resume" replaces it: removing the row is resuming the queue.
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description=_("paused at"), ordering="paused_at")
    def paused(self, record: PausedQueue) -> SafeString:
        return start_html(record.paused_at, timezone.now())

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            "title": gettext("Pause a queue"),
            "show_save_and_add_another": False,
            "show_save_and_continue": False,
            **(extra_context or {}),
        }
        return super().add_view(request, form_url, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            "show_delete": False,  # the Resume button replaces it
            "has_resume_permission": self.has_delete_permission(request),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def save_model(self, request: HttpRequest, obj: PausedQueue, form: Any, change: bool) -> None:
        pause_queue(obj.queue, reason=obj.reason, using=conf.DATABASE)
        saved = PausedQueue.objects.using(conf.DATABASE).get(queue=obj.queue)
        obj.pk, obj.paused_at, obj.reason = saved.pk, saved.paused_at, saved.reason
        obj._state.adding, obj._state.db = False, conf.DATABASE

    def log_addition(self, request: HttpRequest, obj: PausedQueue, message: Any) -> Any:
        return super().log_addition(request, obj, gettext("Paused."))

    def response_add(
        self, request: HttpRequest, obj: PausedQueue, post_url_continue: str | None = None
    ) -> HttpResponse:
        self.message_user(
            request,
            gettext("Paused queue “%(queue)s”: no worker claims its tasks until it is resumed.")
            % {"queue": obj.queue},
            messages.SUCCESS,
        )
        return redirect("admin:django_taskqueue_pausedqueue_changelist")

    def log_deletions(self, request: HttpRequest, queryset: Any) -> Any:
        log_objects(request, queryset, DELETION, gettext("Resumed."))

    def delete_model(self, request: HttpRequest, obj: PausedQueue) -> None:
        resume_queue(obj.queue, using=conf.DATABASE)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[PausedQueue]) -> None:
        for record in queryset:
            resume_queue(record.queue, using=conf.DATABASE)

    def response_delete(self, request: HttpRequest, obj_display: str, obj_id: Any) -> HttpResponse:
        self.message_user(
            request,
            gettext("Resumed queue “%(queue)s”.") % {"queue": obj_display},
            messages.SUCCESS,
        )
        return redirect("admin:django_taskqueue_pausedqueue_changelist")

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.resume_view)
        return [
            path("<path:object_id>/resume/", view, name="django_taskqueue_pausedqueue_resume"),
            *super().get_urls(),
        ]

    def resume_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The Resume button of a paused queue's page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_delete_permission(request):
            raise PermissionDenied
        record = self.get_object(request, unquote(object_id))
        if record is not None:
            self._resume(request, [record])
        else:
            self.message_user(request, gettext("That queue was resumed already."), messages.INFO)
        return redirect("admin:django_taskqueue_pausedqueue_changelist")

    @admin.action(description=_("Resume selected queues"), permissions=["delete"])
    def resume(self, request: HttpRequest, queryset: QuerySet[PausedQueue]) -> None:
        self._resume(request, list(queryset))

    def _resume(self, request: HttpRequest, records: list[PausedQueue]) -> None:
        resumed = _resume_records(request, records)
        if resumed:
            self.message_user(request, _resumed_message(resumed), messages.SUCCESS)


def _resume_records(request: HttpRequest, records: list[PausedQueue]) -> list[str]:
    resumed = [r for r in records if resume_queue(r.queue, using=conf.DATABASE)]
    log_objects(request, resumed, DELETION, gettext("Resumed."))
    return [r.queue for r in resumed]


def _resumed_message(queues: list[str]) -> str:
    return ngettext(
        "Resumed queue %(queues)s: workers claim its tasks again.",
        "Resumed queues %(queues)s: workers claim their tasks again.",
        len(queues),
    ) % {"queues": _names(queues)}


class QueuePausingAdmin(QueueModelAdmin):
    """The task list's actions on the queues of the selected tasks."""

    def has_pause_queues_permission(self, request: HttpRequest) -> bool:
        return _has_perm(request, "add")

    def has_resume_queues_permission(self, request: HttpRequest) -> bool:
        return _has_perm(request, "delete")

    def _queues(self, queryset: QuerySet[Any]) -> list[str]:
        return sorted(queryset.order_by().values_list("queue", flat=True).distinct())

    @admin.action(
        description=_("Pause the queues of the selected tasks"), permissions=["pause_queues"]
    )
    def pause_queues(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        queues = self._queues(queryset)
        paused = [queue for queue in queues if pause_queue(queue, using=conf.DATABASE)]
        records: list[Model] = list(
            PausedQueue.objects.using(conf.DATABASE).filter(queue__in=paused)
        )
        log_objects(request, records, ADDITION, gettext("Paused."))
        if paused:
            self.message_user(
                request,
                ngettext(
                    "Paused queue %(queues)s: no worker claims its tasks until it is resumed.",
                    "Paused queues %(queues)s: no worker claims their tasks until they are "
                    "resumed.",
                    len(paused),
                )
                % {"queues": _names(paused)},
                messages.SUCCESS,
            )
        if already := [queue for queue in queues if queue not in paused]:
            self.message_user(
                request,
                gettext("Paused already: %(queues)s.") % {"queues": _names(already)},
                messages.WARNING,
            )

    @admin.action(
        description=_("Resume the queues of the selected tasks"), permissions=["resume_queues"]
    )
    def resume_queues(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        queues = self._queues(queryset)
        records = list(PausedQueue.objects.using(conf.DATABASE).filter(queue__in=queues))
        resumed = _resume_records(request, records)
        if resumed:
            self.message_user(request, _resumed_message(resumed), messages.SUCCESS)
        if idle := [queue for queue in queues if queue not in resumed]:
            self.message_user(
                request,
                gettext("Not paused: %(queues)s.") % {"queues": _names(idle)},
                messages.WARNING,
            )
