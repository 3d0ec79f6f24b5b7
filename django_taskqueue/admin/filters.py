"""The list filters of the admin: tasks by state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ..models import TaskQuerySet, TaskState

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise


class StateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, _StrOrPromise]]:
        return list(TaskState.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value is not None and value in TaskState.values:
            # The filter of TaskAdmin only, whose rows come from Task.objects.
            return cast(TaskQuerySet, queryset).in_state(value)
        return queryset
