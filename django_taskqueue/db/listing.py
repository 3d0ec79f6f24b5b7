"""The admin's reads on a big queue: counts that stop at a limit, facet counts over a
bounded number of rows, and whether the task list's order can be read from an index.
Part of :class:`~django_taskqueue.db.base.QueueDatabase`, through the ORM on every
database. Why each is shaped this way, with figures, is in docs/benchmarks.md ("The
admin at a million rows")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import Count

if TYPE_CHECKING:
    from django.db.models import Q, QuerySet

# Rows the admin counts before it stops: a count that reaches it is shown as "more
# than" it, or as the planner's estimate where the database gives one.
COUNT_LIMIT = 10_000


@dataclass(frozen=True)
class Counted:
    """A count as the admin shows it: exact, a lower bound (``at_least``: there are
    this many or more) or the planner's estimate."""

    value: int
    at_least: bool = False
    estimated: bool = False

    @property
    def exact(self) -> bool:
        return not (self.at_least or self.estimated)


class ListQueries:
    alias: str

    # Whether ORDER BY locked_until NULLS LAST reads taskqueue_task_locked_idx in order.
    # PostgreSQL's B-tree keeps NULLs last; SQLite and MySQL/MariaDB keep them first
    # and would sort the whole table, so the admin reads claimed and unclaimed tasks
    # apart there, each in index order.
    nulls_last_by_index = False

    def estimated_count(self, queryset: QuerySet[Any]) -> int | None:
        """The planner's row estimate for ``queryset``, where the database has one."""
        return None

    def count_up_to(self, queryset: QuerySet[Any], limit: int) -> int:
        """The rows of ``queryset``, counted up to ``limit`` + 1: a result above
        ``limit`` means "more than ``limit``", and no more rows than that are read."""
        return int(queryset.order_by()[: max(limit, 0) + 1].count())

    def bounded_count(self, queryset: QuerySet[Any], limit: int) -> Counted:
        """Exact up to ``limit``; above it the planner's estimate where there is one
        (and it is above ``limit``), else ``limit`` as a lower bound."""
        seen = self.count_up_to(queryset, limit)
        if seen <= limit:
            return Counted(seen)
        estimate = self.estimated_count(queryset)
        if estimate is not None and estimate > limit:
            return Counted(estimate, estimated=True)
        return Counted(max(limit, 0), at_least=True)

    def facet_counts(
        self, queryset: QuerySet[Any], conditions: dict[str, Q], limit: int
    ) -> dict[str, Counted]:
        """How many rows of ``queryset`` meet each condition, in one query over at most
        ``limit`` + 1 of its rows. Exact when ``queryset`` has no more; else each is
        the planner's estimate where there is one, or the rows met among those read (a
        lower bound)."""
        if not conditions:
            return {}
        sample = queryset.order_by()[: max(limit, 0) + 1]
        counts = sample.aggregate(
            taskqueue_rows=Count("pk"),
            **{f"taskqueue_{i}": Count("pk", filter=q) for i, q in enumerate(conditions.values())},
        )
        found = {key: int(counts[f"taskqueue_{i}"]) for i, key in enumerate(conditions)}
        if counts["taskqueue_rows"] <= limit:
            return {key: Counted(count) for key, count in found.items()}
        estimates = {key: self.estimated_count(queryset.filter(q)) for key, q in conditions.items()}
        return {
            key: (
                Counted(max(estimate, found[key]), estimated=True)
                if estimate is not None
                else Counted(found[key], at_least=True)
            )
            for key, estimate in estimates.items()
        }
