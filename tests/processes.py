"""Helpers to start real Python processes against the test database."""

import os
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection, connections

ROOT = Path(__file__).resolve().parent.parent


def django_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that uses this test run's database."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["TASKQUEUE_TEST_DATABASE_NAME"] = str(connection.settings_dict["NAME"])
    # The second alias's too: Django 6.1's start-up checks ask every database.
    env["TASKQUEUE_TEST_OTHER_DATABASE_NAME"] = str(connections["other"].settings_dict["NAME"])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_python(code: str, **popen_kwargs) -> subprocess.Popen:
    """Start ``python -c code`` with Django set up for the test database."""
    prelude = "import django; django.setup()\n"
    return subprocess.Popen(
        [sys.executable, "-c", prelude + code],
        env=django_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen_kwargs,
    )


def worker(log_path: Path, *args: str, new_session: bool = False, **env: str) -> subprocess.Popen:
    """Start ``django-admin taskqueue_worker <args>`` on the test database.

    Output goes to ``log_path`` (a pipe nobody reads would fill up and block it).
    """
    log = open(log_path, "a")  # noqa: SIM115 - closed by the child's exit
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "django", "taskqueue_worker", *args],
            env=django_env(**env),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    finally:
        log.close()


def wait_for(condition, timeout=60.0, interval=0.05, message="condition"):
    """Poll ``condition`` until it holds; fail naming ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
