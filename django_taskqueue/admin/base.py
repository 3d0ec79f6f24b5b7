"""What the queue and the failure log admins share: pagination, changelist, base admin."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.contrib.humanize.templatetags.humanize import intword
from django.core.exceptions import ValidationError
from django.core.paginator import EmptyPage, Page, Paginator
from django.db.models import CharField, F, OrderBy, Q, QuerySet, TextField
from django.http import HttpRequest, HttpResponse
from django.utils import formats
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import Truncator, capfirst
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..conf import conf
from ..db import queue_db
from ..db.listing import COUNT_LIMIT, Counted
from ..models import FailedTask, Task
from .dates import with_probed_dates
from .names import name_search

# Above this many rows (by the planner's estimate) PostgreSQL counts an unfiltered list
# from table statistics: an exact COUNT(*) reads the whole table, which is most of a
# page's time once the queue holds millions of tasks.
ESTIMATE_ABOVE = 100_000

# Most ids per IN (...) list, so retrying thousands of failures stays under every
# database's limit on the parameters of one statement.
ID_BATCH = 500

# A search that starts with this searches the error text (a scan of every row's
# traceback); any other search leaves the errors alone.
ERROR_SEARCH_PREFIX = "error:"

T = TypeVar("T")


def _batches(items: Sequence[T], size: int = ID_BATCH) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def estimated_count(queryset: QuerySet[Any]) -> int | None:
    """The planner's row estimate for ``queryset``, on databases that give one cheaply."""
    return queue_db(queryset.db).estimated_count(queryset)


def count_label(counted: Counted, limit: int | None = None) -> str:
    """How a count reads in the page: "1,234", "about 1.2 million", "more than
    10,000" (``limit``: a count that stopped there) or "1,234+" (a lower bound)."""
    if counted.estimated:
        value = counted.value
        shown = intword(value) if value >= 1_000_000 else None
        number = (
            shown if isinstance(shown, str) else formats.number_format(value, force_grouping=True)
        )
        return gettext("about %(count)s") % {"count": number}
    number = formats.number_format(counted.value, force_grouping=True)
    if counted.at_least and limit is not None:
        return gettext("more than %(count)s") % {"count": number}
    if counted.at_least:
        return gettext("%(count)s+") % {"count": number}
    return number


def _claim_order_parts(queryset: QuerySet[Any]) -> tuple[QuerySet[Any], QuerySet[Any]] | None:
    """The claimed and the unclaimed rows of a list ordered by ``locked_until`` NULLS
    LAST, each in an order an index gives, on databases whose index keeps NULLs first;
    None when the list is ordered otherwise, or the index gives that order itself."""
    order = queryset.query.order_by
    first = order[0] if order else None
    if (
        not (
            isinstance(first, OrderBy)
            and isinstance(first.expression, F)
            and _is_locked_until(first)
            and first.nulls_last
            and not first.descending
        )
        or queue_db(queryset.db).nulls_last_by_index
    ):
        return None
    # The ordering may name locked_until again (the queryset's own, appended by the
    # changelist): in the unclaimed part it would make MariaDB sort every row.
    rest = [part for part in order[1:] if not _is_locked_until(part)]
    claimed = queryset.filter(locked_until__isnull=False).order_by("locked_until", *rest)
    return claimed, queryset.filter(locked_until__isnull=True).order_by(*rest)


def _is_locked_until(part: Any) -> bool:
    expression = getattr(part, "expression", part)
    name = getattr(expression, "name", expression)
    return isinstance(name, str) and name.lstrip("-") == "locked_until"


# Paginator and ModelAdmin are generic in django-stubs only, not at runtime: the base classes
# below stay unsubscripted.
class EstimatedCountPaginator(Paginator):  # type: ignore[type-arg]  # generic in stubs only
    """Counts that cost the same at any size: an unfiltered list on PostgreSQL from its
    statistics above ``estimate_above`` rows; any other list up to ``count_limit``
    rows, then as the planner's estimate where there is one, else as "more than
    ``count_limit``". A list ordered by the task list's default order is read in
    two index scans where one would not do (see :func:`_claim_order_parts`).
    """

    def __init__(
        self,
        *args: Any,
        estimate_above: int = ESTIMATE_ABOVE,
        count_limit: int = COUNT_LIMIT,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.estimate_above = estimate_above
        self.count_limit = count_limit
        self.counted: Counted | None = None

    def _counted(self) -> Counted:
        count = self.count  # sets self.counted, for a queryset
        if self.counted is None:
            self.counted = Counted(count)
        return self.counted

    @property
    def estimated(self) -> bool:
        return self._counted().estimated

    @property
    def capped(self) -> bool:
        return self._counted().at_least

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return int(super().count)
        db = queue_db(queryset.db)
        counted = None
        if not queryset.query.where:
            estimate = db.estimated_count(queryset)
            if estimate is not None and estimate > self.estimate_above:
                counted = Counted(estimate, estimated=True)
        self.counted = counted or db.bounded_count(queryset, self.count_limit)
        # One past the limit: the page holding the row after it is listed too.
        return self.counted.value + int(self.counted.at_least)

    @property
    def count_label(self) -> str | None:
        """The count as the page shows it when it is not exact (else None)."""
        counted = self._counted()
        return None if counted.exact else count_label(counted, self.count_limit)

    def validate_number(self, number: Any) -> int:
        # A count that stopped at the limit says nothing of the last page: any page
        # may be asked for, and past the end it is empty.
        try:
            return super().validate_number(number)
        except EmptyPage:
            if (self.capped or self.estimated) and int(number) >= 1:
                return int(number)
            raise

    def page(self, number: Any) -> Page[Any]:
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count and not (self.capped or self.estimated):
            top = self.count
        queryset = self.object_list
        parts = _claim_order_parts(queryset) if isinstance(queryset, QuerySet) else None
        if parts is None:
            return Page(queryset[bottom:top], number, self)
        claimed, unclaimed = parts
        rows = list(claimed[bottom:top])
        if len(rows) < top - bottom:
            # The claimed tasks end before this page ends: the unclaimed ones follow.
            seen = bottom + len(rows)
            ahead = seen if rows else queue_db(claimed.db).count_up_to(claimed, bottom)
            rows += list(unclaimed[seen - ahead : top - ahead])
        return Page(rows, number, self)


class QueueChangeList(ChangeList):
    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        # Arguments may be up to MAX_ARGUMENTS_SIZE per row and the list never shows them.
        queryset = super().get_queryset(request, exclude_parameters).defer("arguments")
        return with_probed_dates(queryset) if self.date_hierarchy else queryset

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        if self.result_count == 0:
            # Counted already: a search or filter that matches nothing read the table
            # once, and need not read it again for the rows.
            self.result_list = self.queryset.none()
        # What show_full_result_count does ("5 results (40 total)"), but without a second
        # COUNT(*) when the list is unfiltered, and bounded like the list on a big table.
        paginator = self.paginator
        marked = isinstance(paginator, EstimatedCountPaginator) and paginator.count_label
        if self.queryset.query.where and not marked:
            full = self.model_admin.get_paginator(request, self.root_queryset, 1)
            self.full_result_count = full.count
            if isinstance(full, EstimatedCountPaginator) and full.count_label:
                # "3 results (more than 10,000 total)" cannot be said: leave the total out.
                self.full_result_count = self.result_count
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
    # Lists, state counts and facet counts ("Show counts") read at most this many rows
    # (and one) to count; docs/admin.md ("Big tables").
    count_limit = COUNT_LIMIT

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
            count_limit=self.count_limit,
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """The search of ``search_fields``, shaped for big tables.

        ``"=field"`` is an exact, case-sensitive match (an index lookup where the
        column has one), tried only when the term is a valid value of the field;
        ``"name"`` finds the registered names and framework task paths that contain
        the term (see :func:`.names.name_search`); other fields are searched with
        ``icontains``. A term that is a valid value of an exact field that is not text
        (an id) is looked up by the exact fields only. The error text is searched only
        after ERROR_SEARCH_PREFIX.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        if term[: len(ERROR_SEARCH_PREFIX)].lower() == ERROR_SEARCH_PREFIX:
            text = term[len(ERROR_SEARCH_PREFIX) :].strip()
            return (queryset.filter(error__icontains=text) if text else queryset), False
        exact, contains, is_id = Q(), Q(), False
        for name in self.get_search_fields(request):
            if name == "name":
                contains |= name_search(term) or Q()
                continue
            if not name.startswith("="):
                contains |= Q(**{f"{name}__icontains": term})
                continue
            field = self.model._meta.get_field(name[1:])
            try:
                value = field.to_python(term)
            except ValidationError:
                continue
            exact |= Q(**{name[1:]: value})
            is_id = is_id or not isinstance(field, CharField | TextField)
        condition = exact if is_id else exact | contains
        return (queryset.filter(condition) if condition else queryset.none()), False

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
