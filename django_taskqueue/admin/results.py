"""The results of Django's tasks framework (``TaskResultRecord``): read-only, deletable."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ..conf import conf
from ..models import ResultStatus, TaskResultRecord

# Characters of a result's arguments shown in the list.
PREVIEW_CHARS = 60

# The state badge's colour of each status (the classes of django_taskqueue/admin.css).
BADGES = {
    ResultStatus.READY: "ready",
    ResultStatus.RUNNING: "running",
    ResultStatus.SUCCESSFUL: "succeeded",
    ResultStatus.FAILED: "failed",
}


def _json(value: Any) -> SafeString:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return format_html('<pre class="taskqueue-pre">{}</pre>', text)


def call_preview(args: Any, kwargs: Any) -> str:
    """The arguments as a call would show them: ``2, 3, retry=true``."""
    parts = [json.dumps(value, ensure_ascii=False) for value in args or []]
    if isinstance(kwargs, dict):
        parts += [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


class ResultChangeList(ChangeList):
    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        # The list shows none of them, and they may be large.
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.defer("return_value", "errors", "worker_ids")


@admin.register(TaskResultRecord)
class TaskResultAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic in stubs only
    list_display = [
        "task_path",
        "status_badge",
        "queue",
        "enqueued_at",
        "started_at",
        "finished_at",
        "arguments",
    ]
    list_filter = ["status", "queue"]
    search_fields = ["task_path", "=id"]
    date_hierarchy = "enqueued_at"
    readonly_fields = ["status_badge", "args_json", "kwargs_json", "returned", "error_list"]
    fieldsets = [
        (None, {"fields": ["task_path", "id", "status_badge", "backend", "queue", "priority"]}),
        (
            _("Times"),
            {
                "fields": [
                    "enqueued_at",
                    "run_after",
                    "started_at",
                    "last_attempted_at",
                    "finished_at",
                ]
            },
        ),
        (_("Arguments"), {"fields": ["args_json", "kwargs_json"]}),
        (_("Outcome"), {"fields": ["returned", "error_list", "worker_ids"]}),
    ]

    class Media:
        css = {"all": ["django_taskqueue/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[TaskResultRecord]:
        return super().get_queryset(request).using(conf.DATABASE)

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ResultChangeList

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # the worker writes them

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, record: TaskResultRecord) -> SafeString:
        status = ResultStatus(record.status)
        return format_html(
            '<span class="taskqueue-state taskqueue-state-{}">{}</span>',
            BADGES[status],
            status.label,
        )

    @admin.display(description=_("arguments"))
    def arguments(self, record: TaskResultRecord) -> SafeString | str:
        text = call_preview(record.args, record.kwargs)
        return format_html('<code class="taskqueue-args">{}</code>', text) if text else "-"

    @admin.display(description=_("args"))
    def args_json(self, record: TaskResultRecord) -> SafeString:
        return _json(record.args)

    @admin.display(description=_("kwargs"))
    def kwargs_json(self, record: TaskResultRecord) -> SafeString:
        return _json(record.kwargs)

    @admin.display(description=_("return value"))
    def returned(self, record: TaskResultRecord) -> SafeString | str:
        if record.status != ResultStatus.SUCCESSFUL:
            return "-"
        return _json(record.return_value)

    @admin.display(description=_("errors"))
    def error_list(self, record: TaskResultRecord) -> SafeString | str:
        errors = [e for e in record.errors or [] if isinstance(e, dict)]
        if not errors:
            return "-"
        return format_html_join(
            "",
            '<p><code>{}</code></p><pre class="taskqueue-pre">{}</pre>',
            (
                (error.get("exception_class_path", ""), error.get("traceback", ""))
                for error in errors
            ),
        )
