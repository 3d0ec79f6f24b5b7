"""What the queue and the failure log admins share: pagination, changelist, base admin."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import Truncator, capfirst
from django.utils.translation import gettext_lazy as _

from ..conf import conf
from ..db import queue_db
from ..models import FailedTask, Task

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
    """The planner's row estimate for ``queryset``, on databases that give one cheaply."""
    return queue_db(queryset.db).estimated_count(queryset)


# Paginator and ModelAdmin are generic in django-stubs only, not at runtime: the base classes
# below stay unsubscripted.
class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]  # generic in stubs only
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
        return super().count


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


class QueueModelAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic in stubs only
    """What the queue and the failure log share: read-only rows, big-table pagination.

    Rows are never edited through a form: saving one would write every column back over a
    worker's claim. The detail pages are read-only; the queue changes only through actions
    (run now, cancel, retry, delete), each of which touches only the rows it applies to.
    """

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
    ) -> Paginator[Any]:
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
        # is view-only (see the class docstring).
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


def _base_actions(parent: Any, request: HttpRequest, action_location: Any) -> dict[str, Any]:
    """ModelAdmin.get_actions() on Django 5.2 and 6.0, and with 6.1's action_location."""
    if action_location is None:
        actions: dict[str, Any] = parent.get_actions(request)
    else:
        actions = parent.get_actions(request, action_location=action_location)
    return actions
