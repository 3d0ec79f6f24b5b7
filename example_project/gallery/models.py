from django.db import models
from django.utils import timezone


class Upload(models.Model):
    """A file someone uploaded, and the thumbnails the worker made of it."""

    # A FileField, not an ImageField: a file that is not an image must reach the
    # queue, so the demo can show a task that fails for good.
    file = models.FileField("file", upload_to="uploads/")
    original_name = models.CharField("original name", max_length=255)
    uploaded_at = models.DateTimeField("uploaded at", default=timezone.now)
    # [{"size": 192, "name": "thumbnails/7-192.jpg", "width": 192, "height": 128}, ...]
    thumbnails = models.JSONField("thumbnails", default=list, blank=True)
    done_at = models.DateTimeField("thumbnails made at", null=True, blank=True)
    # "#8a6f4e", filled in later by the "colours" backfill task.
    colour = models.CharField("average colour", max_length=7, blank=True, default="")

    class Meta:
        ordering = [models.F("uploaded_at").desc(), models.F("id").desc()]

    def __str__(self) -> str:
        return f"#{self.pk} {self.original_name}"

    @property
    def resize_signature(self) -> str:
        """At most one queued "resize" task per upload."""
        return f"resize:{self.pk}"
