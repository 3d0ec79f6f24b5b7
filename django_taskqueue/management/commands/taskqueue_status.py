"""``manage.py taskqueue_status``: tasks per queue and state, the lag, recent failures
and the workers, as a table or as JSON."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand

from django_taskqueue.conf import conf
from django_taskqueue.management.options import add_database_argument, positive_int

if TYPE_CHECKING:
    from django_taskqueue.models import WorkerRecord
    from django_taskqueue.status import Status

# Rows counted per state: django_taskqueue.status.COUNT_LIMIT, without importing the
# models before the command runs.
COUNT_LIMIT = 10_000
# The "version" key of --json's output: a key removed or changed in meaning bumps it.
JSON_VERSION = 1
WORKER_COUNTERS = ("succeeded", "failed", "retried", "timed_out", "running")
STATE_COLUMNS = ("ready", "scheduled", "running", "stale")


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def shown(count: int, state: str, estimated: frozenset[str], capped: frozenset[str]) -> str:
    """``~1,234`` for an estimate, ``10,000+`` for a lower bound."""
    if state in estimated:
        return f"~{count:,}"
    return f"{count:,}+" if state in capped else f"{count:,}"


def duration(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def worker_json(worker: WorkerRecord, now: datetime) -> dict[str, Any]:
    return {
        "id": str(worker.pk),
        "alive": worker.is_alive(now),
        "hostname": worker.hostname,
        "pid": worker.pid,
        "queues": worker.queues,
        "threads": worker.threads,
        "version": worker.version,
        "started_at": iso(worker.started_at),
        "last_seen": iso(worker.last_seen),
        "expires_at": iso(worker.expires_at),
        **{name: getattr(worker, name) for name in WORKER_COUNTERS},
    }


def json_document(status: Status) -> str:
    lag = status.lag
    document = {
        "version": JSON_VERSION,
        "database": status.using,
        "now": iso(status.now),
        "count_limit": status.limit,
        "tasks": [
            {
                "queue": row.queue,
                "name": row.name,
                "counts": row.counts,
                "estimated": row.estimated,
                "capped": sorted(row.capped),
            }
            for row in status.rows
        ],
        "totals": {
            "counts": status.totals.counts,
            "estimated": sorted(status.totals.estimated),
            "capped": sorted(status.totals.capped),
        },
        "oldest_due": iso(status.oldest_due),
        "lag_seconds": None if lag is None else round(lag.total_seconds(), 3),
        "failed_last_hour": status.failed_last_hour,
        "paused_queues": [
            {"queue": queue, "paused_at": iso(at), "reason": reason}
            for queue, at, reason in status.paused
        ],
        "workers": [worker_json(worker, status.now) for worker in status.workers],
    }
    return json.dumps(document, indent=2)


def tasks_table(status: Status, by_name: bool) -> list[str]:
    head = ["queue", *(["name"] if by_name else []), *STATE_COLUMNS]
    rows = [head]
    for row in status.rows:
        name = [row.name or ""] if by_name else []
        counts = [shown(row.counts[s], s, frozenset(), row.capped) for s in STATE_COLUMNS]
        rows.append([row.queue, *name, *counts])
    totals = status.totals
    rows.append(
        [
            "(all)",
            *([""] if by_name else []),
            *(shown(totals.counts[s], s, totals.estimated, totals.capped) for s in STATE_COLUMNS),
        ]
    )
    return aligned(rows)


def workers_table(status: Status) -> list[str]:
    rows = [
        [
            "host",
            "pid",
            "queues",
            "threads",
            "version",
            "last seen",
            "succeeded",
            "failed",
            "retried",
            "timed out",
            "running",
            "",
        ]
    ]
    for worker in status.workers:
        alive = worker.is_alive(status.now)
        rows.append(
            [
                worker.hostname,
                str(worker.pid),
                ",".join(worker.queues) or "(all)",
                str(worker.threads),
                worker.version,
                f"{duration(status.now - worker.last_seen)} ago",
                *(f"{getattr(worker, name):,}" for name in WORKER_COUNTERS),
                "" if alive else "DEAD",
            ]
        )
    return aligned(rows)


def as_text(status: Status, by_name: bool) -> str:
    lines = [f"Tasks on database {status.using!r} at {status.now:%Y-%m-%d %H:%M:%S %Z}:"]
    if status.rows:
        lines += tasks_table(status, by_name)
    else:
        lines.append("none queued")
    if status.totals.capped or status.totals.estimated:
        lines.append(
            f"N+: more than the {status.limit:,} rows counted per state (at least N); "
            "~N: the database's estimate."
        )
    lag = status.lag
    lines.append("")
    if lag is None or status.oldest_due is None:
        lines.append("Lag: none (no due task waits)")
    else:
        lines.append(
            f"Lag: {duration(lag)} (the oldest due task waits since "
            f"{status.oldest_due:%Y-%m-%d %H:%M:%S %Z})"
        )
    lines.append(f"Failed in the last hour: {status.failed_last_hour:,}")
    for queue, at, reason in status.paused:
        why = f": {reason}" if reason else ""
        lines.append(f"Paused: queue {queue!r} since {at:%Y-%m-%d %H:%M:%S %Z}{why}")
    live = len(status.live_workers)
    dead = len(status.workers) - live
    lines.append(f"Workers: {live} live, {dead} dead")
    if status.workers:
        lines += workers_table(status)
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Show the queue: tasks per queue and state, the lag (how long the oldest due "
        "task has waited), failures in the last hour and the workers."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--by-name",
            action="store_true",
            help="Count tasks per queue and task name (default: per queue only).",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="Print one JSON object, described in docs/commands.md (default: a table).",
        )
        parser.add_argument(
            "--count-limit",
            type=positive_int,
            default=COUNT_LIMIT,
            metavar="N",
            help="Count at most N tasks per state; past it, counts are lower bounds, "
            "shown N+ (default: %(default)r).",
        )
        add_database_argument(parser)

    def handle(
        self,
        *,
        by_name: bool,
        as_json: bool,
        count_limit: int,
        database: str | None,
        **options: Any,
    ) -> None:
        from django_taskqueue.status import queue_status

        status = queue_status(database or conf.DATABASE, by_name=by_name, limit=count_limit)
        self.stdout.write(json_document(status) if as_json else as_text(status, by_name))
