#!/usr/bin/env python3
"""The test command: ``python3 runtests.py [tox arguments]``.

Needs only Python 3.11+ and this repository. It installs tox into ``.venv-tests``,
looks for the databases and Python versions the suite runs on, and runs tox on what it
found: SQLite always; PostgreSQL (127.0.0.1:5432) and MariaDB/MySQL (127.0.0.1:3306)
when they answer; Python 3.11 and 3.13 where installed. It says what it skipped, and
why. With ``CI`` set (as CI sets it) nothing may be skipped: a missing database or
Python is an error. Arguments (``-e lint``, ``-- -k periodic``) go to tox as they are;
with ``-e`` nothing is chosen for you.
"""

from __future__ import annotations

import configparser
import glob
import os
import shutil
import socket
import subprocess
import sys
import venv
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".venv-tests"
TOX_REQUIREMENT = "tox>=4.22"
DATABASES = {
    # tox factor: (name, URL variable, default URL)
    "postgres": ("PostgreSQL", "TASKQUEUE_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test"),
    "mysql": ("MariaDB/MySQL", "TASKQUEUE_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
}


def say(message: str) -> None:
    print(f"runtests: {message}", flush=True)  # noqa: T201 - a command-line tool


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 2):
            return True
    except OSError:
        return False


def find_python(version: str) -> str | None:
    """A ``python3.X`` that can make virtual environments: PATH, pyenv, /usr."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates += sorted(glob.glob(f"{pyenv}/versions/{version}*/bin/python{version}"))
    candidates += [f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            check = subprocess.run([candidate, "-c", "import venv"], capture_output=True)
            if check.returncode == 0:
                return candidate
    return None


def tox_executable() -> Path:
    """tox in .venv-tests, installed (or upgraded) only when needed."""
    python = TOOLS / "bin" / "python"
    tox = TOOLS / "bin" / "tox"
    if not python.exists():
        say(f"making {TOOLS.name} (a virtual environment for tox)")
        venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS)
    check = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m, sys; "
         f"from packaging.requirements import Requirement; "
         f"sys.exit(0 if Requirement({TOX_REQUIREMENT!r}).specifier.contains("
         f"m.version('tox')) else 1)"],
        capture_output=True,
    )  # fmt: skip
    if check.returncode != 0 or not tox.exists():
        say(f"installing {TOX_REQUIREMENT} into {TOOLS.name}")
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--upgrade", "pip>=25.1", TOX_REQUIREMENT],
            check=True,
        )
    return tox


def default_envs() -> list[str]:
    """tox.ini's env_list, with its {a,b} factors expanded."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "tox.ini")
    envs: list[str] = []
    for line in config["tox"]["env_list"].split():
        envs += expand(line)
    return envs


def expand(pattern: str) -> list[str]:
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    end = pattern.index("}", start)
    head, tail = pattern[:start], pattern[end + 1 :]
    return [
        v for option in pattern[start + 1 : end].split(",") for v in expand(head + option + tail)
    ]


def choose(envs: list[str], strict: bool) -> tuple[list[str], list[str], dict[str, str]]:
    """The envs to run, what was skipped (for the summary) and the PATH additions."""
    skipped: list[str] = []
    missing: list[str] = []
    for factor, (name, variable, default) in DATABASES.items():
        url = os.environ.get(variable, default)
        where = f"{urlsplit(url).hostname}:{urlsplit(url).port}"
        if reachable(url):
            say(f"{name} at {where} answers: its tests run")
            continue
        affected = [e for e in envs if factor in e.split("-")]
        envs = [e for e in envs if e not in affected]
        message = f"{name} at {where} does not answer ({variable} sets another address)"
        skipped.append(f"{message}: skipped {', '.join(affected)}")
        missing.append(name)
    paths: dict[str, str] = {}
    for version in sorted({e.split("-")[0] for e in envs if e.startswith("py3")}):
        dotted = f"{version[2]}.{version[3:]}"
        found = find_python(dotted)
        if found:
            paths[dotted] = str(Path(found).parent)
            continue
        affected = [e for e in envs if e.startswith(version + "-")]
        envs = [e for e in envs if e not in affected]
        skipped.append(f"Python {dotted} is not installed: skipped {', '.join(affected)}")
        missing.append(f"Python {dotted}")
    if strict and missing:
        raise SystemExit(
            "runtests: under CI every database and Python must be there; missing: "
            + ", ".join(missing)
        )
    return envs, skipped, paths


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - said plainly on an older Python
        raise SystemExit("runtests: Python 3.11 or newer is needed")
    strict = os.environ.get("CI", "").lower() not in ("", "0", "false")
    tox = tox_executable()
    env = dict(os.environ)
    skipped: list[str] = []
    args = list(argv)
    if not any(a == "-e" or a.startswith(("-e", "--env")) for a in args):
        envs, skipped, paths = choose(default_envs(), strict)
        env["PATH"] = os.pathsep.join([*paths.values(), env.get("PATH", "")])
        args = ["-e", ",".join(envs), *args]
    else:
        # Environments named by hand still find the Pythons installed outside PATH.
        found = [find_python(version) for version in ("3.11", "3.12", "3.13")]
        dirs = [str(Path(python).parent) for python in found if python]
        env["PATH"] = os.pathsep.join([*dirs, env.get("PATH", "")])
    say(f"tox {' '.join(args)}")
    code = subprocess.run([str(tox), *args], cwd=ROOT, env=env).returncode
    for line in skipped:
        say(f"NOT RUN: {line}")
    say("passed" if code == 0 else f"FAILED (tox exited with {code})")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
