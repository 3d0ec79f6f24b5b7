"""``manage.py taskqueue_resume``: let workers claim from paused queues again."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_taskqueue.exceptions import InvalidTask
from django_taskqueue.management.options import add_database_argument


class Command(BaseCommand):
    help = "Resume paused queues: workers claim their tasks again."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("queues", nargs="*", metavar="QUEUE", help="Queues to resume.")
        parser.add_argument(
            "--all",
            action="store_true",
            dest="resume_all",
            help="Resume every paused queue (default: off).",
        )
        add_database_argument(parser)

    def handle(
        self, *, queues: list[str], resume_all: bool, database: str | None, **options: Any
    ) -> None:
        from django_taskqueue.pausing import paused_queues, resume_queue

        if resume_all == bool(queues):
            raise CommandError("name the queues to resume, or give --all (not both)")
        if resume_all:
            queues = [paused.queue for paused in paused_queues(using=database)]
            if not queues:
                self.stdout.write("No queue is paused.")
        for queue in queues:
            try:
                resumed = resume_queue(queue, using=database)
            except InvalidTask as exc:
                raise CommandError(f"cannot resume {queue!r}: {exc}") from None
            self.stdout.write(
                f"Resumed queue {queue!r}." if resumed else f"Queue {queue!r} was not paused."
            )
