"""The database layer: every statement the queue runs, one class per database.

:func:`queue_db` picks the class for a connection alias once, the way Django picks
``connection.ops``: PostgreSQL, SQLite and MySQL/MariaDB have their own; any other
database with ``SELECT ... FOR UPDATE SKIP LOCKED`` gets
:class:`~django_taskqueue.db.generic.GenericDatabase`, which works through the ORM.
``TASKQUEUE["DATABASE_LAYER"]`` names a class to use instead (``"generic"`` forces the
ORM one).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import connections
from django.db.utils import load_backend
from django.utils.module_loading import import_string

from ..conf import conf
from .base import Claimant, FinishReport, QueueDatabase

__all__ = [
    "Claimant",
    "FinishReport",
    "QueueDatabase",
    "backend_problem",
    "database_class",
    "queue_db",
]

CLASSES = {
    "postgresql": "django_taskqueue.db.postgresql.PostgreSQLDatabase",
    "sqlite": "django_taskqueue.db.sqlite.SQLiteDatabase",
    "mysql": "django_taskqueue.db.mysql.MySQLDatabase",
    "generic": "django_taskqueue.db.generic.GenericDatabase",
}

_databases: dict[str, QueueDatabase] = {}


def database_class(alias: str) -> type[QueueDatabase]:
    """The layer class for ``alias``: TASKQUEUE["DATABASE_LAYER"], else by vendor."""
    chosen = conf.DATABASE_LAYER or connections[alias].vendor
    path = CLASSES.get(chosen) or (chosen if "." in chosen else CLASSES["generic"])
    cls: type[QueueDatabase] = import_string(path)
    return cls


def backend_problem(engine: str) -> str | None:
    """Why no class of the layer can work with Django backend ``engine``, or None."""
    try:
        wrapper = load_backend(engine).DatabaseWrapper
    except (ImportError, ImproperlyConfigured) as exc:
        return str(exc)
    if wrapper.vendor in CLASSES:
        return None
    if not getattr(wrapper.features_class, "has_select_for_update_skip_locked", False):
        return f"{engine} has no SELECT ... FOR UPDATE SKIP LOCKED"
    return None


def queue_db(alias: str | None = None) -> QueueDatabase:
    """The database layer of ``alias`` (default: TASKQUEUE["DATABASE"]), made once."""
    alias = conf.DATABASE if alias is None else alias
    try:
        return _databases[alias]
    except KeyError:
        database = _databases[alias] = database_class(alias)(alias)
        return database


def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in ("TASKQUEUE", "DATABASES"):
        _databases.clear()


setting_changed.connect(_reset, dispatch_uid="django_taskqueue.db")
