"""The queue's tables: ``Task`` (what is queued) and ``FailedTask`` (the failure log)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .constants import (
    DEFAULT_PRIORITY,
    DEFAULT_QUEUE,
    DEFAULT_RETRY_MAX,
    NAME_MAX_LENGTH,
    PRIORITY_MAX,
    PRIORITY_MIN,
    QUEUE_MAX_LENGTH,
    SIGNATURE_MAX_LENGTH,
)
from .outcomes import task_label
from .uuids import uuid7


class TaskState(models.TextChoices):
    """Derived state of a queued task, for display and filtering."""

    SCHEDULED = "scheduled", _("Scheduled")
    READY = "ready", _("Ready")
    RUNNING = "running", _("Running")
    STALE = "stale", _("Stale")


class PartialIndex(models.Index):
    """An index with a condition on the databases that support one (PostgreSQL,
    SQLite), and without it elsewhere (MySQL/MariaDB ignore conditions).

    It deconstructs as ``models.Index(condition=...)``, so migrations are those of a
    plain partial index. Keeping the condition off the ``condition`` attribute is what
    spares MySQL/MariaDB sites the models.W037 warning.
    """

    def __init__(self, *args: Any, condition: Q | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.where = condition

    def deconstruct(self) -> Any:
        _, args, kwargs = super().deconstruct()
        return "django.db.models.Index", args, {**kwargs, "condition": self.where}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, models.Index):
            return bool(self.deconstruct() == other.deconstruct())
        return NotImplemented

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        _, args, options = self.deconstruct()
        if not schema_editor.connection.features.supports_partial_indexes:
            options.pop("condition")
        return models.Index(*args, **options).create_sql(model, schema_editor, using, **kwargs)


class TaskQuerySet(models.QuerySet["Task"]):
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

    name = models.CharField(_("name"), max_length=NAME_MAX_LENGTH)
    arguments = models.JSONField(_("arguments"), default=dict, blank=True)
    priority = models.SmallIntegerField(
        _("priority"), default=DEFAULT_PRIORITY, help_text=_("Lower numbers run first.")
    )
    # NULL, not "", for "no signature": the unique constraint must allow many of them.
    signature = models.CharField(  # noqa: DJ001
        _("signature"), max_length=SIGNATURE_MAX_LENGTH, null=True, blank=True
    )
    queue = models.CharField(_("queue"), max_length=QUEUE_MAX_LENGTH, default=DEFAULT_QUEUE)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    start_at = models.DateTimeField(_("start at"), default=timezone.now)
    lock_id = models.UUIDField(_("lock id"), null=True, blank=True)
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    retry_count = models.PositiveIntegerField(_("retry count"), default=0)
    retry_max = models.PositiveIntegerField(_("retry max"), default=DEFAULT_RETRY_MAX)
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
            PartialIndex(
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
        return f"{task_label(self)} ({self.id})"

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
        return f"{task_label(self)} ({self.task_id}) failed"

    @classmethod
    def from_task(cls, task: Task, error: str, failed_at: datetime | None = None) -> FailedTask:
        values = {name: getattr(task, name) for name in TASK_FIELD_NAMES}
        values["error"] = error
        return cls(task_id=task.id, failed_at=failed_at or timezone.now(), **values)


class ResultStatus(models.TextChoices):
    """Status of a Django tasks framework result (the framework's TaskResultStatus)."""

    READY = "READY", _("Ready")
    RUNNING = "RUNNING", _("Running")
    SUCCESSFUL = "SUCCESSFUL", _("Successful")
    FAILED = "FAILED", _("Failed")


FINISHED_STATUSES = (ResultStatus.SUCCESSFUL, ResultStatus.FAILED)


class TaskResultRecordQuerySet(models.QuerySet["TaskResultRecord"]):
    def prunable(self, before: datetime) -> TaskResultRecordQuerySet:
        """Results that finished before ``before`` and whose task is not queued again."""
        queued = Task.objects.filter(pk=models.OuterRef("pk"))
        return self.filter(status__in=FINISHED_STATUSES, finished_at__lt=before).exclude(
            models.Exists(queued)
        )


class TaskResultRecord(models.Model):
    """The outcome of a task enqueued through Django's tasks framework.

    Only framework tasks have one: it is written by the worker when a run starts and
    when it ends, keyed by the task's id, and outlives the queue row so that
    ``get_result()`` still answers once the task is done. Tasks enqueued with
    :func:`~django_taskqueue.enqueue` never get one.
    """

    id = models.UUIDField(_("task id"), primary_key=True, editable=False)
    task_path = models.TextField(_("task path"))
    backend = models.CharField(_("backend"), max_length=100)
    queue = models.CharField(_("queue"), max_length=QUEUE_MAX_LENGTH, default=DEFAULT_QUEUE)
    priority = models.SmallIntegerField(
        _("priority"), default=0, help_text=_("The framework's priority: higher runs first.")
    )
    args = models.JSONField(_("args"), default=list, blank=True)
    kwargs = models.JSONField(_("kwargs"), default=dict, blank=True)
    run_after = models.DateTimeField(_("run after"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=ResultStatus.choices, default=ResultStatus.READY
    )
    return_value = models.JSONField(_("return value"), null=True, blank=True)
    errors = models.JSONField(_("errors"), default=list, blank=True)
    worker_ids = models.JSONField(_("worker ids"), default=list, blank=True)
    enqueued_at = models.DateTimeField(_("enqueued at"), default=timezone.now)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    last_attempted_at = models.DateTimeField(_("last attempted at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = TaskResultRecordQuerySet.as_manager()

    class Meta:
        verbose_name = _("task result")
        verbose_name_plural = _("task results")
        ordering = [models.F("enqueued_at").desc()]
        indexes = [
            # Pruning: finished results older than RESULT_TTL.
            models.Index(fields=["finished_at"], name="taskqueue_result_finished_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task_path} ({self.id}): {self.status}"


class ScheduleRecord(models.Model):
    """The state of one periodic schedule (:mod:`django_taskqueue.schedules`).

    Workers write a row for each schedule they declare and move ``last_tick`` forward
    with a compare-and-set in the transaction that enqueues the tick's task, so each
    tick is enqueued once however many workers see it come due.
    """

    name = models.CharField(_("name"), max_length=NAME_MAX_LENGTH, unique=True)
    task = models.CharField(
        _("task"), max_length=NAME_MAX_LENGTH, help_text=_("The task name or path enqueued.")
    )
    expression = models.CharField(_("expression"), max_length=200)
    time_zone = models.CharField(_("time zone"), max_length=64)
    enabled = models.BooleanField(
        _("enabled"), default=True, help_text=_("A disabled schedule enqueues nothing.")
    )
    last_tick = models.DateTimeField(
        _("last tick"), help_text=_("Every tick up to this time was enqueued or skipped.")
    )
    last_fired_at = models.DateTimeField(_("last fired at"), null=True, blank=True)
    last_task_id = models.UUIDField(_("last task id"), null=True, blank=True)
    updated_at = models.DateTimeField(_("definition updated at"), default=timezone.now)

    class Meta:
        verbose_name = _("schedule")
        verbose_name_plural = _("schedules")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class WorkerRecordQuerySet(models.QuerySet["WorkerRecord"]):
    def listed(self) -> WorkerRecordQuerySet:
        """Workers that have not stopped cleanly: the live ones and the dead ones."""
        return self.filter(stopped_at__isnull=True)

    def alive(self, now: datetime | None = None) -> WorkerRecordQuerySet:
        return self.listed().filter(expires_at__gte=now or timezone.now())

    def dead(self, now: datetime | None = None) -> WorkerRecordQuerySet:
        return self.listed().filter(expires_at__lt=now or timezone.now())


class WorkerRecord(models.Model):
    """One worker process, written when it starts and refreshed while it lives.

    The id is the worker's lock id: the tasks it holds carry it in ``Task.lock_id``.
    A worker whose record is not refreshed by ``expires_at`` is dead. A clean stop sets
    ``stopped_at``: the row leaves the list of workers and is deleted an hour later,
    once the throughput chart no longer draws its ``history``.
    """

    id = models.UUIDField(_("id"), primary_key=True, editable=False)
    hostname = models.CharField(_("host"), max_length=255)
    pid = models.PositiveIntegerField(_("pid"))
    queues = models.JSONField(_("queues"), default=list, blank=True, help_text=_("Empty: all."))
    threads = models.PositiveIntegerField(_("threads"))
    version = models.CharField(_("version"), max_length=50)
    started_at = models.DateTimeField(_("started at"))
    last_seen = models.DateTimeField(_("last seen"))
    expires_at = models.DateTimeField(
        _("expires at"), db_index=True, help_text=_("Dead if not seen again by then.")
    )
    stopped_at = models.DateTimeField(_("stopped at"), null=True, blank=True)
    succeeded = models.PositiveBigIntegerField(_("succeeded"), default=0)
    failed = models.PositiveBigIntegerField(_("failed"), default=0)
    retried = models.PositiveBigIntegerField(_("retried"), default=0)
    timed_out = models.PositiveBigIntegerField(_("timed out"), default=0)
    running = models.PositiveIntegerField(_("running now"), default=0)
    # {"<minute, seconds since the epoch>": [succeeded, failed, due tasks], ...}: the
    # last hour, for the admin's chart.
    history = models.JSONField(_("history"), default=dict, blank=True)

    objects = WorkerRecordQuerySet.as_manager()

    class Meta:
        verbose_name = _("worker")
        verbose_name_plural = _("workers")
        ordering = ["hostname", "started_at"]

    def __str__(self) -> str:
        return f"{self.hostname}:{self.pid} ({self.id})"

    def is_alive(self, now: datetime | None = None) -> bool:
        return self.stopped_at is None and self.expires_at >= (now or timezone.now())


class PausedQueue(models.Model):
    """A queue no worker claims from while its row exists (see :mod:`~django_taskqueue.pausing`)."""

    queue = models.CharField(_("queue"), max_length=QUEUE_MAX_LENGTH, unique=True)
    paused_at = models.DateTimeField(_("paused at"), default=timezone.now)
    reason = models.CharField(_("reason"), max_length=200, blank=True, default="")

    class Meta:
        verbose_name = _("paused queue")
        verbose_name_plural = _("paused queues")
        ordering = ["queue"]

    def __str__(self) -> str:
        return self.queue
