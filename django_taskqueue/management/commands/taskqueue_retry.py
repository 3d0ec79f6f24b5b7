"""``manage.py taskqueue_retry``: put failed tasks back in the queue."""

from __future__ import annotations

import argparse
import uuid
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_taskqueue.conf import conf
from django_taskqueue.management.options import add_database_argument
from django_taskqueue.management.selection import (
    add_batch_arguments,
    count_of,
    iso_datetime,
    task_id,
)


class Command(BaseCommand):
    help = (
        "Move failed tasks from the failure log back into the queue, due now with a "
        "fresh retry count; the same function as the admin's Retry action. A failure "
        "whose signature is queued stays in the log."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        select = parser.add_argument_group("what to retry (one of)")
        select.add_argument(
            "--id",
            dest="ids",
            action="append",
            type=task_id,
            default=[],
            metavar="UUID",
            help="The id of a failed task (the task's id, as logged; FailedTask.task_id). "
            "Repeat for several.",
        )
        select.add_argument(
            "--name",
            dest="names",
            action="append",
            default=[],
            metavar="NAME",
            help="A task name, or a framework task's dotted path. Repeat for several.",
        )
        select.add_argument(
            "--all", dest="retry_all", action="store_true", help="Every failed task."
        )
        narrow = parser.add_argument_group("narrowing the selection")
        narrow.add_argument(
            "--queue",
            dest="queues",
            action="append",
            default=[],
            metavar="NAME",
            help="Only failures of this queue. Repeat for several (default: every queue).",
        )
        narrow.add_argument(
            "--failed-after",
            type=iso_datetime,
            default=None,
            metavar="DATETIME",
            help="Only failures at or after this ISO 8601 time (default: no limit).",
        )
        narrow.add_argument(
            "--failed-before",
            type=iso_datetime,
            default=None,
            metavar="DATETIME",
            help="Only failures before this ISO 8601 time (default: no limit).",
        )
        add_batch_arguments(parser, "Failures retried")
        add_database_argument(parser)

    def handle(
        self,
        *,
        ids: list[uuid.UUID],
        names: list[str],
        retry_all: bool,
        queues: list[str],
        failed_after: datetime | None,
        failed_before: datetime | None,
        batch_size: int,
        dry_run: bool,
        database: str | None,
        verbosity: int,
        **options: Any,
    ) -> None:
        from django_taskqueue.models import FailedTask
        from django_taskqueue.operations import count_retry, named, retry_failures

        selectors = [option for option, given in (("--id", ids), ("--name", names)) if given]
        if retry_all:
            selectors.append("--all")
        if not selectors:
            raise CommandError("say what to retry: --id UUID, --name NAME or --all")
        if len(selectors) > 1:
            raise CommandError(f"give one of --id, --name and --all, not {' and '.join(selectors)}")
        if failed_after and failed_before and failed_after >= failed_before:
            raise CommandError("--failed-after must be earlier than --failed-before")

        failures = FailedTask.objects.using(database or conf.DATABASE).all()
        if ids:
            failures = failures.filter(task_id__in=ids)
        if names:
            failures = failures.filter(named(names))
        if queues:
            failures = failures.filter(queue__in=queues)
        if failed_after:
            failures = failures.filter(failed_at__gte=failed_after)
        if failed_before:
            failures = failures.filter(failed_at__lt=failed_before)

        if dry_run:
            report = count_retry(failures)
        else:
            report = retry_failures(failures, batch_size=batch_size)
        skipped = []
        if report.skipped_signature:
            skipped.append((report.skipped_signature, "signature already queued"))
        if report.skipped_queued:
            skipped.append((report.skipped_queued, "task already queued"))
        summary = f"{'Would retry' if dry_run else 'Retried'} "
        summary += count_of(report.retried, "failed task", "failed tasks")
        if len(skipped) == 1:
            summary += f" ({skipped[0][0]:,} skipped: {skipped[0][1]})"
        elif skipped:
            total = sum(count for count, _ in skipped)
            summary += f" ({total:,} skipped: " + ", ".join(f"{c:,} {r}" for c, r in skipped) + ")"
        if verbosity or report.conflict:
            self.stdout.write(summary + ".")
        if report.conflict:
            raise CommandError(
                "the retry stopped: the same failed tasks were being retried at the same "
                "time; run the command again for the rest"
            )
