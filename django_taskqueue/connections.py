"""Keeping database connections across tasks, and healing the ones that broke.

Django closes connections at the end of each request; a worker has no requests, so a
thread keeps its connections (even with CONN_MAX_AGE=0) and only drops one that had
an error and no longer answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

logger = logging.getLogger("django_taskqueue")


class ThreadConnections:
    """One executor thread's connections, with the bookkeeping Django does per request.

    The thread's connection object of every alias is looked up once (a thread-local
    lookup per alias costs more than a no-op task), so the checks around each task are
    attribute reads. Creating the objects opens nothing: a connection opens on first use.
    """

    def __init__(self, watch: Callable[..., AbstractContextManager[Any]] | None = None) -> None:
        self.all = [connections[alias] for alias in connections]
        # Wraps each ping: watch(connection) may cut a connection that never answers.
        self.watch = watch or (lambda connection: nullcontext())
        self.health_checked = [c for c in self.all if c.settings_dict.get("CONN_HEALTH_CHECKS")]

    def start_of_task(self) -> None:
        """Let CONN_HEALTH_CHECKS ping once per task, as Django does once per request."""
        for conn in self.health_checked:
            # Set by BaseDatabaseWrapper.__init__(), but missing from django-stubs.
            conn.health_check_done = False  # type: ignore[attr-defined]

    def end_of_task(self) -> None:
        """Close connections that broke; roll back a transaction a consumer left open."""
        for conn in self.all:
            if conn.connection is None:
                continue
            if conn.in_atomic_block:
                # Only reachable if a consumer entered atomic() without leaving it.
                logger.error(
                    "a consumer left a transaction open on %r; rolling it back", conn.alias
                )
                _leave_atomic_blocks(conn)
                continue
            if conn.errors_occurred:
                if self.usable(conn):
                    conn.errors_occurred = False
                else:
                    _close_quietly(conn)

    def check(self) -> None:
        """Ping open connections and drop the dead ones (after a database outage)."""
        for conn in self.all:
            if conn.connection is not None and not conn.in_atomic_block and not self.usable(conn):
                _close_quietly(conn)

    def usable(self, conn: BaseDatabaseWrapper) -> bool:
        with self.watch(conn):
            return bool(conn.is_usable())

    def close(self) -> None:
        for conn in self.all:
            _close_quietly(conn)


def _leave_atomic_blocks(conn: BaseDatabaseWrapper) -> None:
    """Exit the atomic blocks a consumer left open, rolling each back, so that the
    thread's connection is in autocommit again for its next task. (Closing it would
    leave Django's transaction state "in an atomic block" for good.)"""
    try:
        while conn.atomic_blocks:
            conn.set_rollback(True)
            conn.atomic_blocks[-1].__exit__(None, None, None)
    except Exception:
        logger.exception("rolling back the transaction left open on %r failed", conn.alias)
    if conn.in_atomic_block:
        # Entered without atomic(): reset the connection as a new one.
        _close_quietly(conn)
        conn.in_atomic_block = False
        conn.savepoint_ids = []
        conn.needs_rollback = False
        conn.closed_in_transaction = False


def close_quietly(alias: str) -> None:
    """Close a connection that may already be dead, ignoring the errors that says so."""
    _close_quietly(connections[alias])


def _close_quietly(conn: BaseDatabaseWrapper) -> None:
    try:
        conn.close()
    except Exception:
        logger.debug("closing broken connection %r raised", conn.alias, exc_info=True)
        conn.connection = None
