"""The gallery's consumers. django_taskqueue imports every installed app's tasks.py at
start-up, so the worker knows these names without further configuration."""

import logging
from datetime import timedelta
from io import BytesIO

from django.core.files.base import ContentFile
from django.utils import timezone
from PIL import Image, ImageOps

from django_taskqueue import Failure, Requeue, consumer, periodic

from .models import Upload

logger = logging.getLogger(__name__)

THUMBNAIL_SIZES = (96, 192, 384)


def _as_rgb(image: Image.Image) -> Image.Image:
    """RGB for JPEG; transparent parts become white rather than black."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, "white")
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


@consumer("resize")
def resize(args):
    """Make the thumbnails of one upload.

    A file Pillow cannot read fails for good (``Failure``): retrying would not help,
    so the task goes straight to the failed tasks. Any other exception is retried
    later, with backoff.

    Safe to run twice (delivery is at least once): each thumbnail has a fixed name
    and is overwritten.
    """
    upload = Upload.objects.filter(pk=args["upload_id"]).first()
    if upload is None:
        logger.info("upload %s was deleted; nothing to resize", args["upload_id"])
        return None
    try:
        with upload.file.open("rb") as file, Image.open(file) as original:
            original.load()
            image = _as_rgb(ImageOps.exif_transpose(original))
    except (OSError, Image.DecompressionBombError) as exc:
        # Retrying would not help: straight to the failed tasks.
        reason = str(exc).replace(repr(upload.file), repr(upload.original_name))
        return Failure(f"not an image Pillow can read: {reason}")

    storage = upload.file.storage
    thumbnails = []
    for size in args.get("sizes", THUMBNAIL_SIZES):
        thumbnail = image.copy()
        thumbnail.thumbnail((size, size), Image.Resampling.LANCZOS)
        buffer = BytesIO()
        thumbnail.save(buffer, "JPEG", quality=85, optimize=True)
        name = f"thumbnails/{upload.pk}-{size}.jpg"
        if storage.exists(name):
            storage.delete(name)
        name = storage.save(name, ContentFile(buffer.getvalue()))
        thumbnails.append(
            {"size": size, "name": name, "width": thumbnail.width, "height": thumbnail.height}
        )
    upload.thumbnails = thumbnails
    upload.done_at = timezone.now()
    upload.save(update_fields=["thumbnails", "done_at"])
    logger.info("upload %s: made %d thumbnails", upload.pk, len(thumbnails))
    return None


@consumer("colours")
def colours(args):
    """Fill in the average colour of every upload that has thumbnails, a few per run.

    A long job split into steps: each run handles ``step`` uploads after the one
    numbered ``after``, writes where it stopped back into ``args`` and returns
    ``Requeue``. The queue then stores a fresh copy of the task with those arguments,
    which continues from there ``pause`` seconds later. A crash costs one step at
    most, and other tasks get their turn between steps.
    """
    step = args.get("step", 3)
    uploads = list(
        Upload.objects.filter(pk__gt=args.get("after", 0))
        .exclude(done_at=None)
        .order_by("pk")[:step]
    )
    for upload in uploads:
        smallest = min(upload.thumbnails, key=lambda t: t["size"])
        with upload.file.storage.open(smallest["name"], "rb") as file, Image.open(file) as image:
            red, green, blue = (
                image.convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
            )
        upload.colour = f"#{red:02x}{green:02x}{blue:02x}"
        upload.save(update_fields=["colour"])
    args["done"] = args.get("done", 0) + len(uploads)
    if len(uploads) < step:
        logger.info("colour backfill finished: %d uploads", args["done"])
        return None
    args["after"] = uploads[-1].pk
    logger.info(
        "colour backfill: %d uploads so far; requeued to continue after upload %d",
        args["done"],
        args["after"],
    )
    return Requeue(delay_seconds=args.get("pause", 1))


@periodic("15 3 * * *", arguments={"days": 30}, name="clean-old-uploads")
@consumer("clean_old_uploads")
def clean_old_uploads(args):
    """Every night at 03:15 (settings.TIME_ZONE): delete uploads older than
    ``days``, with their files and thumbnails.

    Every worker takes part in the schedule and the database lets one of them enqueue
    each night's run; the schedule shows in the admin under Schedules, where it can be
    paused or run at once.
    """
    cutoff = timezone.now() - timedelta(days=args["days"])
    deleted = 0
    for upload in Upload.objects.filter(uploaded_at__lt=cutoff).iterator():
        storage = upload.file.storage
        for thumbnail in upload.thumbnails:
            storage.delete(thumbnail["name"])
        upload.file.delete(save=False)
        upload.delete()
        deleted += 1
    logger.info("clean-up: deleted %d upload(s) older than %d days", deleted, args["days"])
