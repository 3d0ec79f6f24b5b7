"""The worker's part in periodic tasks: enqueue each schedule's ticks as they come due.

Every worker runs one :class:`Scheduler` in its coordinator, with no leader: when a tick
comes due, each worker that sees it asks the database to record the tick and enqueue its
task in one transaction (:meth:`~django_taskqueue.db.base.QueueDatabase.fire_tick`), and
only the first one's compare-and-set succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import DatabaseError, InterfaceError

from ..schedules import Schedule

if TYPE_CHECKING:
    from ..db import QueueDatabase

logger = logging.getLogger("django_taskqueue")


class Scheduler:
    """Fires the ticks of ``schedules`` on the database of ``db``."""

    def __init__(self, db: QueueDatabase, schedules: Mapping[str, Schedule]) -> None:
        self.db = db
        self.schedules = dict(schedules)
        self.fired = 0
        self._registered = False
        # When each schedule may next have a tick to fire (aware, the worker's clock).
        self._due: dict[str, datetime] = {}

    def __bool__(self) -> bool:
        return bool(self.schedules)

    def run_due(self, now: datetime) -> int:
        """Fire what came due by ``now``; return how many ticks this worker enqueued.
        Database errors propagate (the coordinator waits and tries again)."""
        if not self._registered:
            self.db.register_schedules(list(self.schedules.values()), now)
            self._registered = True
        due = [name for name in self.schedules if self._due.get(name, now) <= now]
        if not due:
            return 0
        rows = self.db.schedule_rows(due)
        fired = 0
        for name in due:
            schedule = self.schedules[name]
            row = rows.get(name)
            if row is None:  # deleted in the admin: it starts again from now
                self.db.register_schedules([schedule], now)
                self._due[name] = schedule.next_tick(now)
                continue
            if not row.enabled:
                self._due[name] = schedule.next_tick(now)
                continue
            fired += self._fire(schedule, row.last_tick, now)
        self.fired += fired
        return fired

    def seconds_until_due(self, now: datetime) -> float | None:
        """Seconds until the next schedule may come due, or None without schedules."""
        if not self.schedules:
            return None
        if not self._registered or len(self._due) < len(self.schedules):
            return 0.0
        return max(0.0, (min(self._due.values()) - now).total_seconds())

    def _fire(self, schedule: Schedule, last: datetime, now: datetime) -> int:
        ticks, skip_to = schedule.plan(last, now)
        boundary = last
        if skip_to is not None:
            self.db.skip_ticks(schedule.name, skip_to)
            logger.warning(
                "schedule %r: ticks up to %s were missed (catch_up=%r) and will not run",
                *(schedule.name, skip_to.isoformat(), schedule.catch_up),
            )
            boundary = skip_to
        fired = 0
        for tick in ticks:
            try:
                won = self.db.fire_tick(
                    schedule.name, tick, now, schedule.enqueuer(self.db.alias, tick)
                )
            except (DatabaseError, InterfaceError):
                raise
            except Exception:
                # Bad arguments, an unknown task, a preprocessor's refusal: the same
                # again at the next try. The tick is logged and passed over.
                logger.exception(
                    "schedule %r: the tick of %s could not be enqueued; it is skipped",
                    *(schedule.name, tick.isoformat()),
                )
                self.db.skip_ticks(schedule.name, tick)
                won = False
            if won:
                fired += 1
                logger.info(
                    "schedule %r: enqueued %s for the tick of %s",
                    *(schedule.name, schedule.task_label, tick.isoformat()),
                )
            boundary = max(boundary, tick)
        self._due[schedule.name] = schedule.next_tick(boundary)
        return fired
