"""``manage.py taskqueue_pause``: stop workers claiming from queues."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_taskqueue.exceptions import InvalidTask
from django_taskqueue.management.options import add_database_argument


class Command(BaseCommand):
    help = (
        "Pause queues: every worker stops claiming their tasks within a poll interval "
        "(at once on PostgreSQL); running tasks finish, enqueueing still works. "
        "taskqueue_resume undoes it."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("queues", nargs="+", metavar="QUEUE", help="Queues to pause.")
        parser.add_argument(
            "--reason", default="", help="Why, shown in the admin and status (default: none)."
        )
        add_database_argument(parser)

    def handle(
        self, *, queues: list[str], reason: str, database: str | None, **options: Any
    ) -> None:
        from django_taskqueue.pausing import pause_queue

        for queue in queues:
            try:
                paused = pause_queue(queue, reason=reason, using=database)
            except InvalidTask as exc:
                raise CommandError(f"cannot pause {queue!r}: {exc}") from None
            self.stdout.write(
                f"Paused queue {queue!r}." if paused else f"Queue {queue!r} was paused already."
            )
