"""What ``taskqueue_retry`` and ``taskqueue_cancel`` share: option types for ids and
times, the batch and dry-run options, and the wording of their summary lines."""

from __future__ import annotations

import argparse
import uuid
from datetime import datetime

from django.utils import timezone

from ..operations import BATCH_SIZE
from .options import positive_int


def task_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a task id (a UUID)") from None


def iso_datetime(value: str) -> datetime:
    """An ISO 8601 date and time; without an offset, in the current time zone."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 date and time (e.g. 2026-12-03T18:00:00+00:00)"
        ) from None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def add_batch_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=BATCH_SIZE,
        metavar="N",
        help=f"{what} per transaction (default: %(default)r).",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="Count what would change; change nothing (default: off).",
    )


def count_of(count: int, singular: str, plural: str) -> str:
    """``1 failed task``, ``1,234 failed tasks``."""
    return f"{count:,} {singular if count == 1 else plural}"
