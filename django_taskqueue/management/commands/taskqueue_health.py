"""``manage.py taskqueue_health``: exit 0 when the queue is served, 1 when it is not,
with one line saying why: for readiness probes, monitoring checks and scripts."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from django_taskqueue.conf import conf
from django_taskqueue.management.options import (
    add_database_argument,
    non_negative_float,
    non_negative_int,
)


class Command(BaseCommand):
    help = (
        "Exit with code 0 if enough live workers serve the queue and its lag is within "
        "bounds, else with code 1; print one line saying why."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--min-workers",
            type=non_negative_int,
            default=1,
            metavar="N",
            help="Unhealthy with fewer live workers (per --queue) (default: %(default)r).",
        )
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            metavar="NAME",
            help="Count only workers serving this queue, and the lag of its tasks; "
            "repeat for several, each checked (default: every queue).",
        )
        parser.add_argument(
            "--max-lag",
            type=non_negative_float,
            default=None,
            metavar="SECONDS",
            help="Unhealthy if the oldest due task has waited longer (default: no limit).",
        )
        add_database_argument(parser)

    def handle(
        self,
        *,
        min_workers: int,
        queues: list[str] | None,
        max_lag: float | None,
        database: str | None,
        **options: Any,
    ) -> None:
        from django_taskqueue.status import check_health

        if min_workers == 0 and max_lag is None:
            raise CommandError("--min-workers 0 without --max-lag checks nothing")
        if queues and not all(queue.strip() for queue in queues):
            raise CommandError("--queue: a queue name must not be empty")
        using = database or conf.DATABASE
        try:
            healthy, reason = check_health(using, min_workers, tuple(queues or ()), max_lag)
        except DatabaseError as exc:
            healthy, reason = (
                False,
                f"database {using!r} did not answer: {' '.join(str(exc).split())}",
            )
        self.stdout.write(f"{'healthy' if healthy else 'unhealthy'}: {reason}")
        if not healthy:
            raise SystemExit(1)
