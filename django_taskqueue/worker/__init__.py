"""The worker: the coordinator that claims and acknowledges tasks, the executor threads
that run them, and the supervisor of ``--processes N``.

:class:`Worker` (in :mod:`~django_taskqueue.worker.coordinator`) is the entry point.
It is imported on first use: a process the supervisor spawns unpickles its entry point
from :mod:`~django_taskqueue.worker.supervisor` before ``django.setup()``, so importing
this package must not import the models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .coordinator import Worker

__all__ = ["Worker"]


def __getattr__(name: str) -> Any:
    if name == "Worker":
        from .coordinator import Worker

        return Worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
