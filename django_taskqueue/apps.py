import importlib.util

import django
from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


def framework_available() -> bool:
    """Is Django's tasks framework importable (Django 6.0+, or the backport)?"""
    return django.VERSION >= (6, 0) or importlib.util.find_spec("django_tasks") is not None


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
        if framework_available():
            # Every process that can enqueue or run framework tasks knows their consumer.
            from .framework import FRAMEWORK_TASK, run_framework_task

            registry.register(run_framework_task, (FRAMEWORK_TASK,))
        module = conf.AUTODISCOVER
        if isinstance(module, str) and module:
            # A broken tasks module raises; the registry is rolled back first.
            autodiscover_modules(module, register_to=registry)
