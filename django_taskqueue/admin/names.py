"""The task names the admin offers without reading the task table: the consumers'
names and the paths of the framework tasks that are loaded."""

from __future__ import annotations

import sys

from django.apps import apps
from django.db.models import Q

from ..constants import FRAMEWORK_TASK
from ..registry import registry


def framework_task_paths() -> list[str]:
    """The paths of the framework tasks (``@task`` functions) of the loaded modules of
    the installed apps that run on this queue."""
    try:
        from ..framework import QueueTask
    except ImportError:  # Django 5.2 without the django-tasks backport
        return []
    roots = tuple(
        config.name for config in apps.get_app_configs() if config.name != "django_taskqueue"
    )
    prefixes = tuple(f"{root}." for root in roots)
    paths = set()
    for name, module in list(sys.modules.items()):
        if module is None or not (name in roots or name.startswith(prefixes)):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, QueueTask):
                paths.add(value.module_path)
    return sorted(paths)


def name_search(term: str) -> Q | None:
    """The tasks whose registered name, or framework task path, contains ``term``
    (case-insensitive): an equality on the name, not a scan of every row's name for
    the text; None when no name contains it."""
    wanted = term.casefold()
    names = [name for name in registry.names() if wanted in name.casefold()]
    paths = [path for path in framework_task_paths() if wanted in path.casefold()]
    if not (names or paths):
        return None
    found = Q(name__in=names) if names else Q()
    if paths:
        found |= Q(name=FRAMEWORK_TASK, arguments__path__in=paths)
    return found
