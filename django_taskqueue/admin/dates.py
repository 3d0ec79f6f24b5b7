"""The date drill-down (``date_hierarchy``) on a big table.

Django lists the years, months or days that hold rows with ``SELECT DISTINCT`` over the
truncated column: every row of the range is read, and on SQLite a Python function is
called for each. Here each period is an index probe instead (``EXISTS`` over its
range), a dozen or so per page whatever the number of rows.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

# Past this many periods between the first and the last row, Django's query is cheaper.
MOST_PROBES = 400


def _periods(first: datetime, last: datetime, kind: str) -> list[datetime] | None:
    """The starts of the periods of ``kind`` from ``first``'s to ``last``'s, in the
    current time zone (None: too many, or a kind the drill-down does not use)."""
    first, last = timezone.localtime(first), timezone.localtime(last)
    if kind == "year":
        starts = [datetime(year, 1, 1) for year in range(first.year, last.year + 1)]
    elif kind == "month":
        months = range(first.year * 12 + first.month - 1, last.year * 12 + last.month)
        starts = [datetime(m // 12, m % 12 + 1, 1) for m in months]
    elif kind == "day":
        days = range(first.toordinal(), last.toordinal() + 1)
        starts = [datetime.fromordinal(day) for day in days]
    else:
        return None
    if len(starts) > MOST_PROBES:
        return None
    return [timezone.make_aware(start) for start in starts]


def _following(start: datetime, kind: str) -> datetime:
    local = timezone.localtime(start).replace(tzinfo=None)
    if kind == "year":
        after = local.replace(year=local.year + 1)
    elif kind == "month":
        after = local.replace(year=local.year + local.month // 12, month=local.month % 12 + 1)
    else:
        after = datetime.fromordinal(local.toordinal() + 1)
    return timezone.make_aware(after)


class ProbedDates:
    """A QuerySet mixin whose ``datetimes()`` probes each period through the index."""

    def datetimes(self, field_name: str, kind: str, order: str = "ASC", tzinfo: Any = None) -> Any:
        queryset: Any = self
        plain = super().datetimes  # type: ignore[misc]
        if order != "ASC" or tzinfo is not None or "__" in field_name:
            return plain(field_name, kind, order, tzinfo)
        ordered = queryset.order_by(field_name).values_list(field_name, flat=True)
        first = ordered.first()
        last = queryset.order_by(f"-{field_name}").values_list(field_name, flat=True).first()
        if first is None or last is None:
            return []
        periods = _periods(first, last, kind)
        if periods is None:
            return plain(field_name, kind, order, tzinfo)
        found = []
        for start in periods:
            within = {f"{field_name}__gte": start, f"{field_name}__lt": _following(start, kind)}
            if queryset.filter(**within).exists():
                found.append(start)
        return found


@cache
def _probed_class(base: type[QuerySet[Any]]) -> type[QuerySet[Any]]:
    return type(f"Probed{base.__name__}", (ProbedDates, base), {})


def with_probed_dates(queryset: QuerySet[Any]) -> QuerySet[Any]:
    """``queryset``, with a drill-down that probes the index for each period."""
    cls = _probed_class(type(queryset))
    return cls(model=queryset.model, query=queryset.query.chain(), using=queryset.db)
