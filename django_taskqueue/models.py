"""The queue's tables: ``Task`` (what is queued) and ``FailedTask`` (the failure log)."""

from __future__ import annotations

import os
import time
import uuid
from datetime import datetime

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

PRIORITY_MIN = -32768
PRIORITY_MAX = 32767
DEFAULT_QUEUE = "default"


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7).

    Ids made close in time sort close together, so inserts land at the end of the
    primary-key index instead of all over it.
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10))
    value = (ms & 0xFFFF_FFFF_FFFF) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & 0x3FFF_FFFF_FFFF_FFFF
    return uuid.UUID(int=value)


class TaskState(models.TextChoices):
    """Derived state of a queued task, for display and filtering."""

    SCHEDULED = "scheduled", _("Scheduled")
    READY = "ready", _("Ready")
    RUNNING = "running", _("Running")
    STALE = "stale", _("Stale")


class TaskQuerySet(models.QuerySet["Task"]):
    def unclaimed(self) -> TaskQuerySet:
        return self.filter(locked_until__isnull=True)

    def due(self, now: datetime | None = None) -> TaskQuerySet:
        """Unclaimed and due (start_at reached)."""
        return self.filter(locked_until__isnull=True, start_at__lte=now or timezone.now())

    def ready(self, now: datetime | None = None) -> TaskQuerySet:
        """What a worker may claim, in claim order: lowest priority, then oldest start_at."""
        return self.due(now).order_by("priority", "start_at")

    def scheduled(self, now: datetime | None = None) -> TaskQuerySet:
        """Unclaimed and not yet due."""
        return self.filter(locked_until__isnull=True, start_at__gt=now or timezone.now())

    def running(self, now: datetime | None = None) -> TaskQuerySet:
        """Claimed by a worker whose claim still holds."""
        return self.filter(locked_until__gte=now or timezone.now())

    def stale(self, now: datetime | None = None) -> TaskQuerySet:
        """Claimed, but the claim expired: the worker holding it is gone."""
        return self.filter(locked_until__lt=now or timezone.now())

    def in_state(self, state: str, now: datetime | None = None) -> TaskQuerySet:
        method = {
            TaskState.SCHEDULED: self.scheduled,
            TaskState.READY: self.due,
            TaskState.RUNNING: self.running,
            TaskState.STALE: self.stale,
        }[TaskState(state)]
        return method(now)


class TaskFields(models.Model):
    """The columns a task has, in the queue and in the failure log."""

    name = models.CharField(_("name"), max_length=255)
    arguments = models.JSONField(_("arguments"), default=dict, blank=True)
    priority = models.SmallIntegerField(
        _("priority"), default=16, help_text=_("Lower numbers run first.")
    )
    # NULL, not "", for "no signature": the unique constraint must allow many of them.
    signature = models.CharField(  # noqa: DJ001
        _("signature"), max_length=255, null=True, blank=True
    )
    queue = models.CharField(_("queue"), max_length=100, default=DEFAULT_QUEUE)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    start_at = models.DateTimeField(_("start at"), default=timezone.now)
    lock_id = models.UUIDField(_("lock id"), null=True, blank=True)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    retry_count = models.PositiveIntegerField(_("retry count"), default=0)
    retry_max = models.PositiveIntegerField(_("retry max"), default=8)
    error = models.TextField(_("error"), blank=True, default="")

    class Meta:
        abstract = True

    @property
    def error_summary(self) -> str:
        """The last line of the error: usually ``ExceptionClass: message``."""
        lines = [line for line in self.error.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""


TASK_FIELD_NAMES = tuple(f.name for f in TaskFields._meta.fields)


class Task(TaskFields):
    """One queued task. The row is deleted when the task is done."""

    id = models.UUIDField(_("id"), primary_key=True, default=uuid7, editable=False)

    objects = TaskQuerySet.as_manager()

    class Meta:
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        ordering = ["priority", "start_at"]
        indexes = [
            # The claim query: unclaimed tasks, lowest priority number first, then
            # oldest start_at; the range scan on start_at stops at "now".
            models.Index(
                fields=["priority", "start_at"],
                name="taskqueue_task_ready_idx",
                condition=Q(locked_until__isnull=True),
            ),
            # Stale-claim recovery (locked_until < now), and the claim query on
            # databases without partial indexes (MySQL/MariaDB).
            models.Index(
                fields=["locked_until", "priority", "start_at"],
                name="taskqueue_task_locked_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["signature"], name="taskqueue_task_signature_uniq"),
            models.CheckConstraint(
                condition=Q(priority__gte=PRIORITY_MIN, priority__lte=PRIORITY_MAX),
                name="taskqueue_task_priority_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    def state(self, now: datetime | None = None) -> TaskState:
        now = now or timezone.now()
        if self.locked_until is not None:
            return TaskState.RUNNING if self.locked_until >= now else TaskState.STALE
        return TaskState.SCHEDULED if self.start_at > now else TaskState.READY


class FailedTask(TaskFields):
    """A task that failed for good: the failure log, with its final error."""

    task_id = models.UUIDField(_("task id"), db_index=True)
    failed_at = models.DateTimeField(_("failed at"), default=timezone.now, db_index=True)

    class Meta:
        verbose_name = _("failed task")
        verbose_name_plural = _("failed tasks")
        ordering = [models.F("failed_at").desc()]

    def __str__(self) -> str:
        return f"{self.name} ({self.task_id}) failed"

    @classmethod
    def from_task(cls, task: Task, error: str, failed_at: datetime | None = None) -> FailedTask:
        values = {name: getattr(task, name) for name in TASK_FIELD_NAMES}
        values["error"] = error
        return cls(task_id=task.id, failed_at=failed_at or timezone.now(), **values)
