"""Tables the test consumers write to, so tests can see what ran."""

from django.db import models


class Run(models.Model):
    """One run of a task by a test consumer."""

    task_id = models.UUIDField(db_index=True)
    name = models.CharField(max_length=255)
    arguments = models.JSONField(default=dict)
    pid = models.IntegerField(default=0)
    ran_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} {self.task_id}"
