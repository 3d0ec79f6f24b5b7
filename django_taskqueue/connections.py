"""Keeping database connections across tasks, and healing the ones that broke.

Django closes connections at the end of each request; a worker has no requests, so a
thread keeps its connections (even with CONN_MAX_AGE=0) and only drops one that had
an error and no longer answers.
"""

from __future__ import annotations

import logging

from django.db import connections

logger = logging.getLogger("django_taskqueue")


def heal_connections() -> None:
    """Close this thread's connections that broke; roll back a transaction left open."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if conn.in_atomic_block:
            # Only reachable if a consumer entered atomic() without leaving it.
            logger.error("a consumer left a transaction open on %r; rolling it back", conn.alias)
            try:
                conn.close()
            except Exception:
                logger.exception("closing connection %r failed", conn.alias)
            continue
        if conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                close_quietly(conn.alias)


def close_quietly(alias: str) -> None:
    """Close a connection that may already be dead, ignoring the errors that says so."""
    try:
        connections[alias].close()
    except Exception:
        logger.debug("closing broken connection %r raised", alias, exc_info=True)
        connections[alias].connection = None


def check_connections() -> None:
    """Ping this thread's connections and drop the dead ones (after a database outage)."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.in_atomic_block and not conn.is_usable():
            close_quietly(conn.alias)


def start_of_task() -> None:
    """Let CONN_HEALTH_CHECKS ping once per task, as Django does once per request."""
    for conn in connections.all(initialized_only=True):
        conn.health_check_done = False
