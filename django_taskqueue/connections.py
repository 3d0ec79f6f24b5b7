"""Keeping database connections across tasks, and healing the ones that broke.

Django closes connections at the end of each request; a worker has no requests, so a
thread keeps its connections (even with CONN_MAX_AGE=0) and only drops one that had
an error and no longer answers.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

logger = logging.getLogger("django_taskqueue")

# A psycopg prepare_threshold that no statement reaches: only prepare=True prepares.
ONLY_WHEN_ASKED = 2**62


def allow_preparing(driver_connection: Any) -> None:
    """Let ``execute(..., prepare=True)`` prepare on a psycopg connection from Django.

    Django sets psycopg's ``prepare_threshold`` to None (for connection poolers), and
    psycopg then ignores ``prepare=True`` too. A threshold no statement reaches keeps
    Django's own queries unprepared and lets the queue's statements be prepared. A
    threshold the site set in ``OPTIONS`` is left alone.
    """
    if driver_connection.prepare_threshold is None:
        driver_connection.prepare_threshold = ONLY_WHEN_ASKED


# Driver connections on which the worker's prepared statements keep one plan.
_generic_plans: weakref.WeakSet[Any] = weakref.WeakSet()


def keep_generic_plans(driver_connection: Any) -> None:
    """Have PostgreSQL plan the worker's prepared statements once, not at each run.

    After five runs of a prepared statement, PostgreSQL compares the cost estimate of
    a generic plan with that of plans made for the actual values, and keeps planning
    anew when the generic one looks dearer. It does for the claim (its ``LIMIT`` and
    id arrays are parameters), so every cycle paid for planning a statement of CTEs
    and subqueries: about a fifth of the server's CPU per task. The generic plan is
    the one the claim is written for (an index scan of the ready tasks, primary-key
    lookups), so the worker's connection uses it: ``plan_cache_mode`` only concerns
    prepared statements, and only the queue's own are prepared there unless
    ``OPTIONS["prepare_threshold"]`` prepares Django's too, in which case nothing is
    changed. A ``SET`` inside a transaction would be undone by its rollback, so it is
    sent only outside one.
    """
    from psycopg.pq import TransactionStatus

    if driver_connection in _generic_plans:
        return
    if driver_connection.prepare_threshold != ONLY_WHEN_ASKED:
        return
    if driver_connection.info.transaction_status != TransactionStatus.IDLE:
        return
    driver_connection.execute("SET plan_cache_mode = force_generic_plan")
    _generic_plans.add(driver_connection)


def warn_prepared_statements_lost(alias: str, consequence: str) -> None:
    logger.warning(
        "prepared statements do not survive on database %r (a transaction-pooling "
        "proxy?); %s in this process. Set TASKQUEUE['PREPARE_STATEMENTS'] = False to "
        "silence this.",
        alias,
        consequence,
    )


def lost_prepared_statement(exc: BaseException) -> bool:
    """Whether ``exc`` says the server did not know (or already had) a prepared statement.

    A transaction-pooling proxy that does not track prepared statements does this: the
    statement went to a server connection that never saw it, and did not run.
    """
    try:
        from psycopg import errors
    except ImportError:
        return False
    lost = (errors.InvalidSqlStatementName, errors.DuplicatePreparedStatement)
    return isinstance(exc, lost) or isinstance(exc.__cause__, lost)


class ThreadConnections:
    """One executor thread's connections, with the bookkeeping Django does per request.

    The thread's connection object of every alias is looked up once (a thread-local
    lookup per alias costs more than a no-op task), so the checks around each task are
    attribute reads. Creating the objects opens nothing: a connection opens on first use.
    """

    def __init__(self) -> None:
        self.all = [connections[alias] for alias in connections]
        self.health_checked = [c for c in self.all if c.settings_dict.get("CONN_HEALTH_CHECKS")]

    def start_of_task(self) -> None:
        """Let CONN_HEALTH_CHECKS ping once per task, as Django does once per request."""
        for conn in self.health_checked:
            conn.health_check_done = False

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
                try:
                    conn.close()
                except Exception:
                    logger.exception("closing connection %r failed", conn.alias)
                continue
            if conn.errors_occurred:
                if conn.is_usable():
                    conn.errors_occurred = False
                else:
                    _close_quietly(conn)

    def check(self) -> None:
        """Ping open connections and drop the dead ones (after a database outage)."""
        for conn in self.all:
            if conn.connection is not None and not conn.in_atomic_block and not conn.is_usable():
                _close_quietly(conn)

    def close(self) -> None:
        for conn in self.all:
            _close_quietly(conn)


def close_quietly(alias: str) -> None:
    """Close a connection that may already be dead, ignoring the errors that says so."""
    _close_quietly(connections[alias])


def _close_quietly(conn: BaseDatabaseWrapper) -> None:
    try:
        conn.close()
    except Exception:
        logger.debug("closing broken connection %r raised", conn.alias, exc_info=True)
        conn.connection = None
