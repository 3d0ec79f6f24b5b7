import time
from dataclasses import dataclass

from django.contrib import messages
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from django_taskqueue import enqueue
from django_taskqueue.models import FailedTask, ScheduleRecord, Task, TaskState
from django_taskqueue.periodic_tasks import declared

from . import samples
from .forms import UploadForm
from .models import Upload
from .tasks import THUMBNAIL_SIZES

FAILED_TASKS_URL = "/admin/django_taskqueue/failedtask/"


def _queue_resize(request: HttpRequest, upload: Upload, delay: int = 0) -> None:
    task = enqueue(
        "resize",
        {"upload_id": upload.pk, "sizes": list(THUMBNAIL_SIZES)},
        delay_seconds=delay,
        signature=upload.resize_signature,
    )
    if task is None:
        # A task with this signature is already queued: enqueue() dropped this one.
        messages.info(request, f"Upload #{upload.pk} is already waiting for the worker.")
    elif delay:
        messages.success(request, f"Upload #{upload.pk} queued; the worker starts in {delay} s.")
    else:
        messages.success(request, f"Upload #{upload.pk} queued.")


def _create(request: HttpRequest, name: str, content: File, delay: int) -> None:
    # enqueue() joins this transaction: if anything in it fails, neither the upload
    # nor its task is stored.
    with transaction.atomic():
        upload = Upload(original_name=name[:255])
        upload.file.save(name, content)
        _queue_resize(request, upload, delay)


@dataclass
class Row:
    upload: Upload
    state: str  # waiting, done, failed
    detail: str
    failed_task: FailedTask | None = None

    @property
    def thumbnails(self) -> list[dict]:
        storage = self.upload.file.storage
        return [{**t, "url": storage.url(t["name"])} for t in self.upload.thumbnails]

    @property
    def thumbnail(self) -> dict | None:
        """The one shown on the page: 192 px if there is one."""
        by_size = {t["size"]: t for t in self.thumbnails}
        return by_size.get(192) or next(iter(by_size.values()), None)

    def as_json(self) -> dict:
        return {
            "id": self.upload.pk,
            "name": self.upload.original_name,
            "state": self.state,
            "detail": self.detail,
            "colour": self.upload.colour,
            "thumbnails": self.thumbnails,
        }


def _rows(uploads: list[Upload]) -> list[Row]:
    """Each upload's state, read from the queue's own tables.

    The queue is read before the uploads are read again: a task that finishes in
    between has then either left its thumbnails or a failed task behind.
    """
    signatures = [u.resize_signature for u in uploads]
    queued = {t.signature: t for t in Task.objects.filter(signature__in=signatures)}
    failed = {}
    for failed_task in FailedTask.objects.filter(signature__in=signatures).order_by("failed_at"):
        failed[failed_task.signature] = failed_task  # the latest failure wins
    fresh = Upload.objects.in_bulk([u.pk for u in uploads])
    now = timezone.now()
    rows = []
    for upload in uploads:
        upload = fresh.get(upload.pk, upload)
        task = queued.get(upload.resize_signature)
        failure = failed.get(upload.resize_signature)
        if task is not None:
            rows.append(Row(upload, "waiting", _describe(task, now)))
        elif failure is not None and (upload.done_at is None or failure.failed_at > upload.done_at):
            rows.append(Row(upload, "failed", failure.error_summary, failure))
        elif upload.done_at is not None:
            rows.append(Row(upload, "done", f"{len(upload.thumbnails)} thumbnails"))
        else:
            rows.append(Row(upload, "idle", "not queued: was its task cancelled?"))
    return rows


def _describe(task: Task, now) -> str:
    state = task.state(now)
    if state == TaskState.SCHEDULED:
        seconds = max(1, round((task.start_at - now).total_seconds()))
        text = f"scheduled, starts in {seconds} s"
    elif state == TaskState.READY:
        text = "ready, waiting for a worker thread"
    elif state == TaskState.RUNNING:
        text = "running"
    else:
        text = "stale: its worker died; it will run again"
    if task.retry_count:
        text += f" (retry {task.retry_count} of {task.retry_max} after: {task.error_summary})"
    return text


def _backfill() -> dict | None:
    task = Task.objects.filter(signature="colours").first()
    if task is None:
        return None
    return {
        "done": task.arguments.get("done", 0),
        "after": task.arguments.get("after", 0),
        "state": _describe(task, timezone.now()),
    }


def _cleanup() -> dict | None:
    """The nightly clean-up's schedule, once a worker has registered it."""
    record = ScheduleRecord.objects.filter(name="clean-old-uploads").first()
    if record is None:
        return None
    schedule = declared()["clean-old-uploads"]
    return {
        "expression": record.expression,
        "time_zone": record.time_zone,
        "enabled": record.enabled,
        "next_tick": schedule.next_tick(max(record.last_tick, timezone.now())).isoformat(),
        "last_fired_at": record.last_fired_at.isoformat() if record.last_fired_at else None,
    }


def _queue_counts() -> dict[str, int]:
    now = timezone.now()
    counts = {str(state.label): Task.objects.in_state(state, now).count() for state in TaskState}
    counts["Failed"] = FailedTask.objects.count()
    return counts


def index(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            file = form.cleaned_data["file"]
            _create(request, file.name, file, form.cleaned_data["delay"])
            return redirect("gallery:index")
    else:
        form = UploadForm()
    rows = _rows(list(Upload.objects.all()[:48]))
    context = {
        "form": form,
        "rows": rows,
        "waiting": any(row.state == "waiting" for row in rows),
        "backfill": _backfill(),
        "counts": _queue_counts(),
        "cleanup": _cleanup(),
        "failed_tasks_url": FAILED_TASKS_URL,
    }
    context["waiting"] = context["waiting"] or context["backfill"] is not None
    return render(request, "gallery/index.html", context)


@require_POST
def upload_sample(request: HttpRequest) -> HttpResponse:
    seed = time.time_ns()
    _create(
        request, f"landscape-{seed % 100000}.png", ContentFile(samples.landscape(seed)), delay=3
    )
    return redirect("gallery:index")


@require_POST
def upload_broken(request: HttpRequest) -> HttpResponse:
    _create(request, "not-a-picture.jpg", ContentFile(samples.broken()), delay=0)
    return redirect("gallery:index")


@require_POST
def resize_again(request: HttpRequest, pk: int) -> HttpResponse:
    _queue_resize(request, get_object_or_404(Upload, pk=pk))
    return redirect("gallery:index")


@require_POST
def fix_file(request: HttpRequest, pk: int) -> HttpResponse:
    """Put a picture in place of a broken file, so that retrying its failed task works."""
    upload = get_object_or_404(Upload, pk=pk)
    upload.file.delete(save=False)
    upload.original_name = f"fixed-{pk}.png"
    upload.file.save(upload.original_name, ContentFile(samples.landscape(time.time_ns())))
    messages.success(
        request,
        f"Upload #{pk} holds a picture now. Retry its failed task in the admin "
        "(or press Make thumbnails again) and watch it succeed.",
    )
    return redirect("gallery:index")


@require_POST
def backfill_colours(request: HttpRequest) -> HttpResponse:
    task = enqueue("colours", {"after": 0, "step": 2, "pause": 1}, signature="colours")
    if task is None:
        messages.info(request, "The colour backfill is already running.")
    else:
        messages.success(request, "Colour backfill queued: two uploads per step.")
    return redirect("gallery:index")


@require_GET
def status(request: HttpRequest) -> JsonResponse:
    rows = _rows(list(Upload.objects.all()[:48]))
    return JsonResponse(
        {
            "uploads": [row.as_json() for row in rows],
            "backfill": _backfill(),
            "queue": _queue_counts(),
            "cleanup": _cleanup(),
        }
    )
