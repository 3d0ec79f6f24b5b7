"""``manage.py taskqueue_cancel``: delete queued tasks that have not started."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_taskqueue.conf import conf
from django_taskqueue.exceptions import InvalidTask
from django_taskqueue.management.options import add_database_argument
from django_taskqueue.management.selection import add_batch_arguments, count_of, task_id


class Command(BaseCommand):
    help = (
        "Delete queued tasks by id or signature, or every task that matches --name and "
        "--queue with --all-matching. A task a worker is running now cannot be stopped: "
        "it is left alone and counted. Results of framework tasks become FAILED."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        select = parser.add_argument_group("what to cancel")
        select.add_argument(
            "--id",
            dest="ids",
            action="append",
            type=task_id,
            default=[],
            metavar="UUID",
            help="The id of a queued task. Repeat for several.",
        )
        select.add_argument(
            "--signature",
            dest="signatures",
            action="append",
            default=[],
            metavar="SIGNATURE",
            help="The signature of a queued task. Repeat for several.",
        )
        select.add_argument(
            "--all-matching",
            action="store_true",
            help="Every queued task that matches --name and --queue (all of them without).",
        )
        select.add_argument(
            "--name",
            dest="names",
            action="append",
            default=[],
            metavar="NAME",
            help="With --all-matching: a task name, or a framework task's dotted path. "
            "Repeat for several.",
        )
        select.add_argument(
            "--queue",
            dest="queues",
            action="append",
            default=[],
            metavar="NAME",
            help="With --all-matching: a queue. Repeat for several.",
        )
        add_batch_arguments(parser, "Tasks cancelled")
        add_database_argument(parser)

    def handle(
        self,
        *,
        ids: list[uuid.UUID],
        signatures: list[str],
        all_matching: bool,
        names: list[str],
        queues: list[str],
        batch_size: int,
        dry_run: bool,
        database: str | None,
        verbosity: int,
        **options: Any,
    ) -> None:
        from django_taskqueue.models import Task
        from django_taskqueue.operations import (
            CancelReport,
            cancel_ids,
            cancel_matching,
            cancel_signatures,
            named,
        )

        if all_matching and (ids or signatures):
            raise CommandError(
                "--all-matching selects by --name and --queue: not with --id or --signature"
            )
        if (names or queues) and not all_matching:
            raise CommandError(
                "--name and --queue select every task that matches: add --all-matching "
                "(and try --dry-run first)"
            )
        if not (ids or signatures or all_matching):
            raise CommandError(
                "say what to cancel: --id UUID, --signature SIGNATURE, or --all-matching "
                "with --name and --queue"
            )

        using = database or conf.DATABASE
        report = CancelReport(dry_run=dry_run)
        if signatures:
            try:
                report.add(cancel_signatures(signatures, using=using, dry_run=dry_run))
            except InvalidTask as exc:
                raise CommandError(f"--signature: {exc}") from None
        if ids:
            report.add(cancel_ids(ids, using=using, dry_run=dry_run, batch_size=batch_size))
        if all_matching:
            tasks = Task.objects.using(using).all()
            if names:
                tasks = tasks.filter(named(names))
            if queues:
                tasks = tasks.filter(queue__in=queues)
            report.add(cancel_matching(tasks, dry_run=dry_run, batch_size=batch_size))

        summary = f"{'Would cancel' if dry_run else 'Cancelled'} "
        summary += count_of(report.cancelled, "queued task", "queued tasks")
        notes = []
        if report.running:
            notes.append(f"{report.running:,} not cancelled: running")
        if report.missing:
            notes.append(f"{report.missing:,} not found")
        if notes:
            summary += f" ({'; '.join(notes)})"
        if verbosity:
            self.stdout.write(summary + ".")
