"""The quickstart and the README's first example, run as written in a new project.

The code blocks are read from the pages themselves: a change to a page that breaks a
step breaks this test. Conventions the pages follow:

- a ``console`` block's lines run in the project directory (``pip install`` is skipped:
  the package under test is installed already; the worker gets ``--burst``);
- a ``python`` block whose first line is ``# path/to/file.py`` is that file, and
  ``# path/to/file.py: add at the end`` is appended to it;
- a ``python`` block whose first line starts with ``# anywhere`` runs in
  ``manage.py shell``.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.processes import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        connection.vendor not in ("sqlite", "postgresql"),
        reason="the quickstart is tested on SQLite and PostgreSQL",
    ),
]

BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
FILE_HEADER = re.compile(r"^# ([\w./-]+\.py)(: add at the end)?\b")


def blocks(text):
    return [(match.group(1), match.group(2)) for match in BLOCK.finditer(text)]


def section(path, start, end=None):
    text = (ROOT / path).read_text()
    text = text[text.index(start) :]
    return text[: text.index(end)] if end else text


class Project:
    def __init__(self, directory: Path, database: dict | None):
        self.dir = directory
        self.database = database
        self.outputs: list[str] = []
        env = dict(os.environ)
        for name in list(env):
            if name.startswith(("DJANGO_", "TASKQUEUE_", "DATABASE_URL")):
                del env[name]
        env["PYTHONPATH"] = str(directory)
        self.env = env

    def run(self, args, stdin=None):
        proc = subprocess.run(
            [sys.executable, *args],
            cwd=self.dir,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=180,
        )
        output = proc.stdout + proc.stderr
        self.outputs.append(f"$ {' '.join(args)}\n{output}")
        assert proc.returncode == 0, "\n".join(self.outputs)
        return output

    def console(self, line):
        words = line.split()
        if words[:2] == ["pip", "install"]:
            return ""
        if words[0] == "django-admin":
            return self.run(["-m", "django", *words[1:]])
        assert words[:2] == ["python", "manage.py"], f"unexpected command: {line}"
        if words[2] == "shell" and "-c" in words:
            # The quoted command, as a shell would pass it.
            code = line.split('-c "', 1)[1].rsplit('"', 1)[0]
            return self.run(["manage.py", "shell", "-c", code])
        if words[2] == "taskqueue_worker":
            return self.run(["manage.py", "taskqueue_worker", "--burst", *words[3:]])
        if words[2] == "migrate":
            self.use_database()
        return self.run(["manage.py", *words[2:]])

    def use_database(self):
        """Point the project at the test's database (once, before it migrates)."""
        if self.database is None or getattr(self, "_database_set", False):
            return
        self._database_set = True
        with open(self.dir / "mysite" / "settings.py", "a") as settings:
            settings.write(f"\nDATABASES = {{'default': {self.database!r}}}\n")

    def apply(self, language, code):
        if language == "console":
            for line in code.strip().splitlines():
                self.console(line.strip())
        elif language == "python":
            first = code.splitlines()[0]
            header = FILE_HEADER.match(first)
            if header:
                path = self.dir / header.group(1)
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a" if header.group(2) else "w") as file:
                    file.write(("\n" if header.group(2) else "") + code)
            elif first.startswith("# anywhere"):
                self.use_database()
                self.run(["manage.py", "shell"], stdin=code)


@pytest.fixture
def database(tmp_path):
    """None for SQLite (the project's own file); a fresh PostgreSQL database otherwise."""
    if connection.vendor == "sqlite":
        yield None
        return
    import psycopg

    settings = connection.settings_dict
    name = "taskqueue_quickstart"
    params = {"host": settings["HOST"] or None, "port": settings["PORT"] or None}
    params["user"] = settings["USER"] or None
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    yield {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": settings["USER"],
        "HOST": settings["HOST"],
        "PORT": settings["PORT"],
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_the_quickstart_runs_as_written(tmp_path, database):
    project = Project(tmp_path, database)
    for language, code in blocks(section("docs/quickstart.md", "## Add it to a project")):
        project.apply(language, code)
    log = "\n".join(project.outputs)
    # The worker ran the task: it printed its greeting ...
    assert "Hello, Ada!" in log, log
    # ... and said so at its default verbosity.
    assert re.search(r"INFO .* task \S+ \(greet\) succeeded in", log), log
    left = project.run(
        [
            "manage.py",
            "shell",
            "-c",
            "from django_taskqueue.models import Task, FailedTask; "
            "print(Task.objects.count(), FailedTask.objects.count())",
        ]
    )
    assert left.split()[-2:] == ["0", "0"], log


def test_the_readmes_first_example_runs_in_the_quickstarts_project(tmp_path, database):
    project = Project(tmp_path, database)
    setup = section("docs/quickstart.md", "### 1. A project", "### 3. A consumer")
    for language, code in blocks(setup):
        project.apply(language, code)
    project.console("python manage.py migrate")
    for language, code in blocks(section("README.md", "# django-taskqueue", "## Try it")):
        project.apply(language, code)
    log = "\n".join(project.outputs)
    assert "Hello, Ada!" in log, log
