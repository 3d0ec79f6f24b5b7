from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

import django
from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _

from .constants import FRAMEWORK_TASK

if TYPE_CHECKING:
    from .models import Task


def framework_available() -> bool:
    """Is Django's tasks framework importable (Django 6.0+, or the backport)?"""
    return django.VERSION >= (6, 0) or importlib.util.find_spec("django_tasks") is not None


def run_framework_task(payload: dict[str, Any], task: Task) -> Any:
    """The consumer of framework tasks, imported on the first one to run.

    A process that never runs one (most workers of a site that does not use the
    framework) does not import the framework at all: about 2.5 MB less per process.
    """
    from .framework_consumer import run_framework_task

    return run_framework_task(payload, task)


class TaskQueueConfig(AppConfig):
    name = "django_taskqueue"
    verbose_name = _("Task queue")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.utils.module_loading import autodiscover_modules

        from . import checks as taskqueue_checks
        from .conf import conf
        from .registry import registry

        checks.register(taskqueue_checks.check_settings, checks.Tags.compatibility)
        # Not tagged "database": these read settings only, and must run on a plain `check`.
        checks.register(taskqueue_checks.check_databases, checks.Tags.compatibility)
        checks.register(taskqueue_checks.check_schedules, checks.Tags.compatibility)
        checks.register(taskqueue_checks.check_retry_settings, checks.Tags.compatibility)
        checks.register(taskqueue_checks.check_database_support, checks.Tags.database)
        if framework_available():
            # Every process that can enqueue or run framework tasks knows their consumer.
            registry.register(run_framework_task, (FRAMEWORK_TASK,))
        if conf.METRICS and importlib.util.find_spec("prometheus_client"):
            from .metrics import enable

            enable()  # without prometheus_client, check E034 says so
        module = conf.AUTODISCOVER
        if isinstance(module, str) and module:
            # A broken tasks module raises; the registry is rolled back first.
            autodiscover_modules(module, register_to=registry)
