"""``manage.py taskqueue_prune``: prune the failure log and task results, and repair
results that killed workers left behind."""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand

from django_taskqueue.conf import conf
from django_taskqueue.management.options import add_database_argument, positive_float


class Command(BaseCommand):
    help = (
        "Delete failure-log rows older than TASKQUEUE['FAILED_TASK_RETENTION'] and "
        "framework task results finished longer than TASKQUEUE['RESULT_TTL'] ago, and "
        "repair results a killed worker left READY or RUNNING. Workers also do this "
        "every few minutes."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--failed-older-than",
            type=positive_float,
            default=None,
            metavar="SECONDS",
            help="Delete failures older than this (default: "
            f"TASKQUEUE['FAILED_TASK_RETENTION'], now {conf.FAILED_TASK_RETENTION}).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would change; change nothing (default: off).",
        )
        add_database_argument(parser)

    def handle(
        self,
        *,
        failed_older_than: float | None,
        dry_run: bool,
        database: str | None,
        verbosity: int,
        **options: Any,
    ) -> None:
        from django_taskqueue.retention import prune_failed, prune_results, repair_results

        using = database or conf.DATABASE
        repaired = repair_results(using, dry_run=dry_run)
        failed = prune_failed(using, retention=failed_older_than, dry_run=dry_run)
        results = prune_results(using, dry_run=dry_run)
        if verbosity:
            verb = "Would delete" if dry_run else "Deleted"
            fix = "would repair" if dry_run else "repaired"
            self.stdout.write(
                f"{verb} {failed} failed task(s) and {results} task result(s); "
                f"{fix} {repaired} task result(s)."
            )
