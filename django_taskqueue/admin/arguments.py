"""Task arguments in the lists of tasks and failed tasks: the name a framework task goes
by, a short preview of the arguments, and the explicit ``args:`` search."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db import connections
from django.db.models import QuerySet, TextField
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Cast, Left
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ..models import FailedTask, Task
from .base import QueueChangeList, QueueModelAdmin
from .history import PATH, label

# Characters of a task's arguments (as JSON text) shown in a list, and in its tooltip.
PREVIEW_CHARS = 60
TOOLTIP_CHARS = 300
# The prefix of the argument search, and the longest text it searches for.
SEARCH_PREFIX = "args:"
SEARCH_MAX = 200

# Where a listed row keeps what the second query of its page read.
PREVIEW = "_taskqueue_preview"
FUNCTION_PATH = "_taskqueue_path"


class ArgumentsChangeList(QueueChangeList):
    """The list reads no arguments (they may be large); one more query reads, for the
    rows of the page only, the start of their JSON text and a framework task's path."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        rows = {obj.pk: obj for obj in self.result_list}
        if not rows:
            return
        found = (
            self.model._default_manager.using(self.root_queryset.db)
            .filter(pk__in=list(rows))
            .order_by()
            .values_list("pk", Left(Cast("arguments", TextField()), TOOLTIP_CHARS + 1), PATH)
        )
        for pk, preview, path in found:
            setattr(rows[pk], PREVIEW, preview or "")
            setattr(rows[pk], FUNCTION_PATH, path)


def _path(obj: Task | FailedTask) -> Any:
    if hasattr(obj, FUNCTION_PATH):
        return getattr(obj, FUNCTION_PATH)
    if "arguments" in obj.get_deferred_fields() or not isinstance(obj.arguments, dict):
        return None
    return obj.arguments.get("path")


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


class ArgumentsAdmin(QueueModelAdmin):
    """The name and arguments columns and the ``args:`` search of both lists."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[QueueChangeList]:
        return ArgumentsChangeList

    @admin.display(description=_("name"), ordering="name")
    def task_name(self, obj: Task | FailedTask) -> str:
        return label(obj.name, _path(obj))

    @admin.display(description=_("arguments"))
    def arguments_preview(self, obj: Task | FailedTask) -> SafeString | str:
        text = getattr(obj, PREVIEW, None)
        if text is None:
            if "arguments" in obj.get_deferred_fields():
                return "-"
            text = json.dumps(obj.arguments, ensure_ascii=False)[: TOOLTIP_CHARS + 1]
        if text in ("", "{}"):
            return "-"
        return format_html(
            '<code class="taskqueue-args" title="{}">{}</code>',
            _cut(text, TOOLTIP_CHARS),
            _cut(text, PREVIEW_CHARS),
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if term[: len(SEARCH_PREFIX)].lower() == SEARCH_PREFIX:
            return search_arguments(queryset, term[len(SEARCH_PREFIX) :].strip()), False
        return super().get_search_results(request, queryset, search_term)


def search_arguments(queryset: QuerySet[Any], text: str) -> QuerySet[Any]:
    """``key=value``: tasks whose argument ``key`` is ``value`` (JSON if it parses, else
    text); anything else: tasks whose arguments' JSON text contains it. Both read every
    row the other filters leave: no index covers arguments."""
    if not text or len(text) > SEARCH_MAX:
        return queryset.none()
    key, equals, raw = text.partition("=")
    key = key.strip()
    if equals and key:
        value = _value(raw.strip())
        if connections[queryset.db].features.supports_json_field_contains:
            # Containment: an index on arguments (GIN on PostgreSQL) can serve it.
            return queryset.filter(arguments__contains={key: value})
        by_key: QuerySet[Any] = queryset.alias(
            _taskqueue_argument=KeyTransform(key, "arguments")
        ).filter(_taskqueue_argument=value)
        return by_key
    by_text: QuerySet[Any] = queryset.alias(
        _taskqueue_arguments=Cast("arguments", TextField())
    ).filter(_taskqueue_arguments__icontains=text)
    return by_text


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw
