"""The workers' admin (``WorkerRecord``): who runs, since when, what it did, what it
holds. Read-only: the workers write these rows; a dead worker's row may be deleted."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.timesince import timesince
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..conf import conf
from ..models import Task, WorkerRecord, WorkerRecordQuerySet
from .base import _base_actions

# The tasks a worker's page lists: its threads and buffer hold far fewer.
HELD_SHOWN = 200


def workers(using: str | None = None) -> WorkerRecordQuerySet:
    return WorkerRecord.objects.using(using or conf.DATABASE)


READ = "_taskqueue_worker_records"


def worker_rows(request: HttpRequest, using: str) -> list[WorkerRecord]:
    """Every worker record, stopped ones too, read once per request: the chart, the
    links to the workers holding tasks and the queue filter's choices share them."""
    read: tuple[str, list[WorkerRecord]] | None = getattr(request, READ, None)
    if read is None or read[0] != using:
        fields = ("id", "hostname", "pid", "queues", "stopped_at", "history")
        read = (using, list(workers(using).order_by().only(*fields)))
        setattr(request, READ, read)
    return read[1]


def ago(moment: datetime, now: datetime) -> str:
    """ "12 seconds ago", "3 minutes ago": workers refresh their rows every few seconds."""
    seconds = int((now - moment).total_seconds())
    if seconds < 60:
        seconds = max(seconds, 0)
        return ngettext("%(count)d second ago", "%(count)d seconds ago", seconds) % {
            "count": seconds
        }
    return gettext("%(time)s ago") % {"time": timesince(moment, now, depth=1)}


def worker_link(record: WorkerRecord | None, lock_id: uuid.UUID | None) -> SafeString | str:
    """The worker holding a claim, linked to its page; the bare lock id if it has no row."""
    if lock_id is None:
        return "-"
    if record is None:
        return format_html('<span class="taskqueue-lock-id">{}</span>', lock_id)
    url = reverse("admin:django_taskqueue_workerrecord_change", args=[record.pk])
    return format_html(
        '<a href="{}" title="{}">{}:{}</a>', url, record.pk, record.hostname, record.pid
    )


def _moment(moment: datetime) -> SafeString:
    """How long ago, with the exact time in the tooltip (as the task list's start)."""
    return format_html(
        '<time class="taskqueue-time" datetime="{}" title="{}">{}</time>',
        moment.isoformat(),
        formats.localize(timezone.localtime(moment)),
        ago(moment, timezone.now()),
    )


class AliveFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("alive", _("alive")), ("dead", _("dead"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        records = cast(WorkerRecordQuerySet, queryset)
        if self.value() == "alive":
            return records.alive()
        if self.value() == "dead":
            return records.dead()
        return queryset


@admin.register(WorkerRecord)
class WorkerAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic in stubs only
    list_display = [
        "hostname",
        "status",
        "pid",
        "queue_names",
        "threads",
        "version",
        "started",
        "seen",
        "succeeded",
        "failed",
        "retried",
        "timed_out",
        "running",
    ]
    list_filter = [AliveFilter]
    search_fields = ["hostname", "=pid", "version"]
    actions = ["delete_dead"]

    class Media:
        css = {"all": ["django_taskqueue/admin.css"]}

    fieldsets = [
        (None, {"fields": ["id", "hostname", "pid", "queue_names", "threads", "version"]}),
        (_("Life"), {"fields": ["status", "started_at", "seen", "expires_at"]}),
        (
            _("Tasks"),
            {"fields": ["succeeded", "failed", "retried", "timed_out", "running", "held_tasks"]},
        ),
    ]
    readonly_fields = [
        "id",
        "hostname",
        "pid",
        "queue_names",
        "threads",
        "version",
        "status",
        "started_at",
        "seen",
        "expires_at",
        "succeeded",
        "failed",
        "retried",
        "timed_out",
        "running",
        "held_tasks",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        # A cleanly stopped worker's row stays an hour for the chart, out of this list.
        queryset = cast(WorkerRecordQuerySet, super().get_queryset(request))
        return queryset.using(conf.DATABASE).listed().defer("history")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # workers write their own rows

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_alive():
            return False  # it would write its row again at its next refresh
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest, action_location: Any = None) -> dict[str, Any]:
        actions = _base_actions(super(), request, action_location)
        # "delete_dead" replaces it: it leaves live workers alone and says so.
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description=_("queues"))
    def queue_names(self, record: WorkerRecord) -> str:
        queues = record.queues if isinstance(record.queues, list) else []
        return ", ".join(str(queue) for queue in queues) or gettext("all")

    @admin.display(description=_("started at"), ordering="started_at")
    def started(self, record: WorkerRecord) -> SafeString:
        return _moment(record.started_at)

    @admin.display(description=_("last seen"), ordering="last_seen")
    def seen(self, record: WorkerRecord) -> SafeString:
        return _moment(record.last_seen)

    @admin.display(description=_("status"), ordering="expires_at")
    def status(self, record: WorkerRecord) -> SafeString:
        if record.is_alive(timezone.now()):
            return format_html(
                '<span class="taskqueue-state taskqueue-state-ready">{}</span>', gettext("alive")
            )
        return format_html(
            '<span class="taskqueue-state taskqueue-state-stale" title="{}">{}</span>',
            gettext("Not seen since %(time)s") % {"time": formats.localize(record.last_seen)},
            gettext("dead"),
        )

    @admin.display(description=_("tasks held now"))
    def held_tasks(self, record: WorkerRecord) -> SafeString | str:
        tasks = list(
            Task.objects.using(conf.DATABASE)
            .filter(lock_id=record.pk)
            .only("id", "name", "start_at", "lock_id", "locked_until")
            .order_by("locked_until", "pk")[: HELD_SHOWN + 1]
        )
        if not tasks:
            return gettext("None")
        shown = format_html_join(
            "",
            '<li><a href="{}">{}</a> <span class="quiet">{}</span></li>',
            (
                (reverse("admin:django_taskqueue_task_change", args=[task.pk]), task.name, task.pk)
                for task in tasks[:HELD_SHOWN]
            ),
        )
        more = ""
        if len(tasks) > HELD_SHOWN:
            more = format_html("<li>{}</li>", gettext("and more"))
        return format_html('<ul class="taskqueue-held">{}{}</ul>', shown, more)

    @admin.action(description=_("Delete selected dead workers"), permissions=["delete"])
    def delete_dead(self, request: HttpRequest, queryset: QuerySet[WorkerRecord]) -> None:
        now = timezone.now()
        records = cast(WorkerRecordQuerySet, queryset.order_by())
        alive = records.alive(now).count()
        # Written to the admin's history first, as Django's own delete action does.
        self.log_deletions(request, records.dead(now).only("id", "hostname", "pid"))
        deleted = records.dead(now).delete()[1].get(WorkerRecord._meta.label, 0)
        if deleted:
            self.message_user(
                request,
                ngettext(
                    "Deleted %(count)d dead worker.", "Deleted %(count)d dead workers.", deleted
                )
                % {"count": deleted},
                messages.SUCCESS,
            )
        if alive:
            self.message_user(
                request,
                ngettext(
                    "%(count)d worker was left alone: it is alive.",
                    "%(count)d workers were left alone: they are alive.",
                    alive,
                )
                % {"count": alive},
                messages.WARNING,
            )
