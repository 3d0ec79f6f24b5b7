"""Helpers to start real Python processes against the test database."""

import os
import subprocess
import sys
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def django_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that uses this test run's database."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["TASKQUEUE_TEST_DATABASE_NAME"] = str(connection.settings_dict["NAME"])
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


def manage(*args: str, **popen_kwargs) -> subprocess.Popen:
    """Start ``django-admin <args>`` with the test settings, for the test database."""
    return subprocess.Popen(
        [sys.executable, "-m", "django", *args],
        env=django_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen_kwargs,
    )
