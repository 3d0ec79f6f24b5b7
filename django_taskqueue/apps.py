from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


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
        checks.register(taskqueue_checks.check_databases, checks.Tags.database)
        module = conf.AUTODISCOVER
        if isinstance(module, str) and module:
            # A broken tasks module raises; the registry is rolled back first.
            autodiscover_modules(module, register_to=registry)
