"""Consumers for the tests; also the fixture for tasks.py autodiscovery."""

import os
import time

from django_taskqueue import Error, Failure, Ignored, Requeue, consumer

from .models import Run


def record(args, task):
    Run.objects.create(task_id=task.id, name=task.name, arguments=args, pid=os.getpid())


@consumer("tests.noop")
def noop(args):
    return None


@consumer("tests.record")
def record_run(args, task):
    record(args, task)


@consumer("tests.sleep")
def sleep(args, task):
    """Sleeps on its first attempt only, so a rerun after a crash finishes quickly."""
    record(args, task)
    time.sleep(args.get("seconds", 1) if task.retry_count == 0 else 0)
    Run.objects.create(task_id=task.id, name="tests.sleep.done", arguments=args, pid=os.getpid())


@consumer("tests.pause")
def pause(args, task):
    """Records its start, then sleeps without touching the database."""
    record(args, task)
    time.sleep(args.get("seconds", 1))


@consumer("tests.raise")
def raise_error(args):
    raise ValueError(args.get("message", "boom"))


@consumer("tests.error")
def return_error(args):
    return Error(RuntimeError("returned error"))


@consumer("tests.failure")
def return_failure(args):
    return Failure("cannot ever work")


@consumer("tests.steps")
def steps(args, task):
    """Walks through records in steps: one Requeue per step, carrying its position."""
    record(args, task)
    args["position"] = args.get("position", 0) + 1
    if args["position"] < args.get("total", 3):
        return Requeue()
    return None


@consumer("tests.ignored")
def ignores(args):
    return Ignored()


@consumer("tests.kill")
def kill_self(args, task):
    record(args, task)
    os.kill(os.getpid(), 9)


@consumer("tests.connection")
def which_connection(args, task):
    """Records which database connection object this run used."""
    from django.db import connection

    connection.ensure_connection()
    Run.objects.create(
        task_id=task.id, name=task.name, arguments={"conn": id(connection.connection)}
    )


@consumer("tests.step_then_raise")
def step_then_raise(args):
    """Changes its arguments in place, then fails: the retry must carry the change."""
    args["position"] = args.get("position", 0) + 1
    raise ValueError("step failed")


@consumer("tests.hang", timeout=1)
def hang(args, task):
    """Records its start, then never returns in time (a 1 s limit)."""
    record(args, task)
    time.sleep(args.get("seconds", 60))


@consumer("tests.backend")
def which_backend(args, task):
    """Records the database server's id of this run's connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
        elif connection.vendor == "mysql":
            cursor.execute("SELECT CONNECTION_ID()")
        else:
            cursor.execute("SELECT 0")
        backend = cursor.fetchone()[0]
    Run.objects.create(task_id=task.id, name=task.name, arguments={"backend": backend})
