"""The schedules' admin (``ScheduleRecord``): expression, time zone, last and next tick,
the enabled flag, and "run now"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..conf import conf
from ..models import ScheduleRecord
from ..periodic_tasks import declared
from ..schedules import Schedule, ScheduleError


@admin.register(ScheduleRecord)
class ScheduleAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic in stubs only
    list_display = [
        "name",
        "task",
        "expression",
        "timezone_name",
        "enabled",
        "last_tick",
        "next_tick",
        "last_fired_at",
        "declared_here",
    ]
    list_filter = ["enabled"]
    search_fields = ["name", "task"]
    actions = ["run_now", "enable", "disable"]
    fields = [
        "name",
        "task",
        "expression",
        "time_zone",
        "enabled",
        "last_tick",
        "next_tick",
        "last_fired_at",
        "last_task_id",
        "updated_at",
    ]
    readonly_fields = [
        "name",
        "task",
        "expression",
        "time_zone",
        "last_tick",
        "next_tick",
        "last_fired_at",
        "last_task_id",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # schedules are declared in code or settings

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        self._declared = _declared_or_empty()
        return super().get_changelist_instance(request)

    def _schedule(self, record: ScheduleRecord) -> Schedule | None:
        schedules = getattr(self, "_declared", None)
        if schedules is None:
            schedules = self._declared = _declared_or_empty()
        return schedules.get(record.name)

    @admin.display(description=_("time zone"), ordering="time_zone")
    def timezone_name(self, record: ScheduleRecord) -> str:
        return record.time_zone

    @admin.display(description=_("next tick"))
    def next_tick(self, record: ScheduleRecord) -> datetime | str:
        schedule = self._schedule(record)
        if schedule is None or not record.enabled:
            return "-"
        return schedule.next_tick(max(record.last_tick, timezone.now()))

    @admin.display(description=_("declared"), boolean=True)
    def declared_here(self, record: ScheduleRecord) -> bool:
        """False for a schedule no longer in the code or settings: it never fires."""
        return self._schedule(record) is not None

    @admin.action(description=_("Run selected schedules now"), permissions=["change"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[ScheduleRecord]) -> None:
        ran = 0
        for record in queryset:
            schedule = self._schedule(record)
            if schedule is None:
                self.message_user(
                    request,
                    gettext("%(name)s is not declared in this deployment; nothing was run.")
                    % {"name": record.name},
                    messages.ERROR,
                )
                continue
            try:
                schedule.enqueuer(conf.DATABASE, timezone.now())()
            except ScheduleError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            self.log_change(request, record, "Ran now")
            ran += 1
        if ran:
            self.message_user(
                request,
                ngettext(
                    "Enqueued %(count)d schedule's task.",
                    "Enqueued %(count)d schedules' tasks.",
                    ran,
                )
                % {"count": ran},
                messages.SUCCESS,
            )

    @admin.action(description=_("Enable selected schedules"), permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[ScheduleRecord]) -> None:
        # Ticks missed while it was disabled are not caught up: it starts from now.
        now = timezone.now()
        records = list(queryset.filter(enabled=False))
        for record in records:
            record.enabled = True
            record.last_tick = max(record.last_tick, now)
            record.save(update_fields=["enabled", "last_tick"])
            self.log_change(request, record, "Enabled")
        self._changed(request, len(records), "enabled")

    @admin.action(description=_("Disable selected schedules"), permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[ScheduleRecord]) -> None:
        records = list(queryset.filter(enabled=True))
        for record in records:
            queryset.model.objects.filter(pk=record.pk).update(enabled=False)
            self.log_change(request, record, "Disabled")
        self._changed(request, len(records), "disabled")

    def save_model(
        self, request: HttpRequest, obj: ScheduleRecord, form: Any, change: bool
    ) -> None:
        if change and "enabled" in form.changed_data and obj.enabled:
            obj.last_tick = max(obj.last_tick, timezone.now())
        super().save_model(request, obj, form, change)

    def _changed(self, request: HttpRequest, count: int, what: str) -> None:
        self.message_user(
            request,
            ngettext("%(count)d schedule %(what)s.", "%(count)d schedules %(what)s.", count)
            % {"count": count, "what": what},
            messages.SUCCESS,
        )


def _declared_or_empty() -> dict[str, Schedule]:
    try:
        return declared()
    except ScheduleError:
        return {}  # reported by the system checks
