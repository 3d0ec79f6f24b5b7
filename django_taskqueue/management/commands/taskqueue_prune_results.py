"""``manage.py taskqueue_prune_results``: delete expired Django tasks framework results."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_taskqueue.conf import conf
from django_taskqueue.management.options import add_database_argument, positive_float


class Command(BaseCommand):
    help = (
        "Delete results of Django tasks framework tasks that finished longer than "
        "TASKQUEUE['RESULT_TTL'] seconds ago. Workers also do this every few minutes."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--older-than",
            type=positive_float,
            default=None,
            metavar="SECONDS",
            help="Delete results finished more than this many seconds ago "
            f"(default: TASKQUEUE['RESULT_TTL'], now {conf.RESULT_TTL}).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be deleted; delete nothing (default: off).",
        )
        add_database_argument(parser)

    def handle(
        self,
        *,
        older_than: float | None,
        dry_run: bool,
        database: str | None,
        verbosity: int,
        **options: Any,
    ) -> None:
        from django_taskqueue.retention import prune_results

        ttl = conf.RESULT_TTL if older_than is None else older_than
        if ttl is None:
            raise CommandError(
                "TASKQUEUE['RESULT_TTL'] is None (keep results forever); pass --older-than "
                "to prune anyway."
            )
        count = prune_results(database or conf.DATABASE, ttl=ttl, dry_run=dry_run)
        if verbosity:
            verb = "Would delete" if dry_run else "Deleted"
            self.stdout.write(f"{verb} {count} task result(s) finished over {ttl:g}s ago.")
