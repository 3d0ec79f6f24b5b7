#!/usr/bin/env python3
"""Run the example project: the web server and a task worker together, until Ctrl-C.

    python3 example_project/demo.py              # then open http://127.0.0.1:8000/
    python3 example_project/demo.py --port 8080
    python3 example_project/demo.py --smoke      # start, upload an image over HTTP,
                                                 # wait for its thumbnails, stop

The first run makes a virtual environment in .venv at the top of the repository and
installs this checkout into it (editable), with the example's own packages (the
"example" dependency group of pyproject.toml: Pillow and django-environ). Then it
migrates the database (SQLite in example_project/db.sqlite3 unless DATABASE_URL says
otherwise), creates the admin user demo (password demo), and runs
``manage.py runserver`` and ``manage.py taskqueue_worker`` side by side, their output
prefixed with "web" and "worker". Ctrl-C stops both; the worker lets running tasks
finish first. A second Ctrl-C kills them.

Standard library only, so any Python 3.11+ runs it, on Linux or macOS.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import venv
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HOST = "127.0.0.1"
USERNAME = PASSWORD = "demo"
WORKER_GRACE = 10  # seconds the worker waits for running tasks when stopped
SMOKE_TIMEOUT = 60  # seconds the smoke run waits for each step

_print_lock = threading.Lock()


def say(text: str, prefix: str = "demo") -> None:
    # If the terminal or pipe is gone, stopping the children still matters.
    with _print_lock, contextlib.suppress(OSError):
        print(f"{prefix:>6} | {text}", flush=True)


class DemoError(Exception):
    """Something the user can fix; the message says what."""


# Set-up -----------------------------------------------------------------------------


def venv_python(path: Path) -> Path:
    return path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


# The database driver DATABASE_URL needs, by its scheme; SQLite needs none.
DRIVERS = {
    "postgres": "psycopg[binary]>=3.2",
    "postgresql": "psycopg[binary]>=3.2",
    "pgsql": "psycopg[binary]>=3.2",
    "mysql": "mysqlclient>=2.2.1",
    "mariadb": "mysqlclient>=2.2.1",
}


def ensure_venv(path: Path, database_url: str) -> Path:
    """A virtual environment with this checkout and the example's packages installed."""
    import tomllib

    pyproject = REPO / "pyproject.toml"
    requirements = tomllib.loads(pyproject.read_text())["dependency-groups"]["example"]
    scheme = database_url.partition("://")[0].partition("+")[0].lower()
    if scheme in DRIVERS:
        requirements = [*requirements, DRIVERS[scheme]]
    fingerprint = hashlib.sha256(pyproject.read_bytes() + repr(requirements).encode()).hexdigest()
    python = venv_python(path)
    stamp = path / ".example-installed"
    if python.exists() and stamp.exists() and stamp.read_text() == fingerprint:
        return python
    if not python.exists():
        say(f"creating a virtual environment in {path}")
        try:
            venv.EnvBuilder(with_pip=True, clear=path.exists()).create(path)
        except (subprocess.CalledProcessError, OSError) as exc:
            raise DemoError(
                f"could not create a virtual environment ({exc}). On Debian and Ubuntu, "
                "install the python3-venv package first."
            ) from exc
    say(f"installing this checkout and {', '.join(requirements)} (takes a minute the first time)")
    subprocess.run(
        [
            *(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"),
            *("--editable", str(REPO), *requirements),
        ],
        check=True,
    )
    stamp.write_text(fingerprint)
    return python


def manage(python: Path, env: dict[str, str], *args: str) -> None:
    subprocess.run([python, "manage.py", *args], cwd=HERE, env=env, check=True)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        # As runserver does: a port with connections in TIME_WAIT is free to listen on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def choose_port(requested: int | None) -> int:
    if requested is not None:
        if not port_is_free(requested):
            raise DemoError(f"port {requested} is in use; pick another with --port")
        return requested
    for port in range(8000, 8020):
        if port_is_free(port):
            return port
    return free_port()


# Running the two processes -----------------------------------------------------------


class Child:
    """A process in its own session, so a terminal's Ctrl-C reaches only this script,
    which then stops each child exactly once (a second signal would make the worker
    abandon its running tasks)."""

    def __init__(self, name: str, args: list[str | Path], env: dict[str, str]) -> None:
        self.name = name
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            args,
            cwd=HERE,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        self.reader = threading.Thread(target=self._pump, daemon=True)
        self.reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            say(line, self.name)

    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: int, *, group: bool = False) -> None:
        if not self.alive():
            return
        try:
            if group and hasattr(os, "killpg"):
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float) -> int | None:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.reader.join(timeout=2)
        return code


class Demo:
    def __init__(self, python: Path, env: dict[str, str], port: int) -> None:
        self.python = python
        self.env = env
        self.port = port
        self.base_url = f"http://{HOST}:{port}"
        self.web: Child | None = None
        self.worker: Child | None = None
        self.stopping = threading.Event()

    def start(self) -> None:
        self.web = Child(
            "web",
            [self.python, "manage.py", "runserver", f"{HOST}:{self.port}", "--noreload"],
            self.env,
        )
        self.worker = Child(
            "worker",
            [self.python, "manage.py", "taskqueue_worker", "--grace", str(WORKER_GRACE)],
            self.env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.stopping.is_set():
            for child in (self.web, self.worker):
                if not child.alive():
                    raise DemoError(f"the {child.name} process exited at start-up")
            try:
                with urllib.request.urlopen(self.base_url + "/status.json", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers; what it says is the smoke run's business
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        if not self.stopping.is_set():
            raise DemoError(f"the web server did not answer on {self.base_url} within 30 s")

    def install_signal_handlers(self) -> None:
        def handle(signum: int, frame: object) -> None:
            if self.stopping.is_set():
                say("second signal: killing the web server and the worker")
                for child in (self.web, self.worker):
                    if child is not None:
                        child.signal(signal.SIGKILL, group=True)
                return
            self.stopping.set()

        for name in ("SIGINT", "SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), handle)

    def wait_until_stopped(self) -> int:
        """Block until Ctrl-C (0) or until a child dies by itself (1)."""
        while not self.stopping.wait(0.5):
            for child in (self.web, self.worker):
                if child is not None and not child.alive():
                    say(f"the {child.name} process exited with code {child.process.returncode}")
                    return 1
        return 0

    def stop(self) -> dict[str, int | None]:
        """Stop both: runserver exits on SIGINT, the worker stops gracefully on SIGTERM."""
        self.stopping.set()
        say("stopping the web server and the worker")
        if self.web is not None:
            self.web.signal(signal.SIGINT, group=True)
        if self.worker is not None:
            self.worker.signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for child, timeout in ((self.worker, WORKER_GRACE + 10), (self.web, 10)):
            if child is None:
                continue
            code = child.wait(timeout)
            if code is None:
                say(f"the {child.name} process did not stop in {timeout} s; killing it")
                child.signal(signal.SIGKILL, group=True)
                code = child.wait(5)
            codes[child.name] = code
        return codes


# The smoke run ---------------------------------------------------------------------


def png(width: int = 320, height: int = 200) -> bytes:
    """A small gradient PNG, made without Pillow."""
    rows = b"".join(
        b"\x00" + bytes(c for x in range(width) for c in (x * 255 // width, y * 255 // height, 150))
        for y in range(height)
    )

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class Browser:
    """Just enough of a browser: cookies, the CSRF token, multipart uploads."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def get(self, path: str) -> bytes:
        with self.opener.open(self.base_url + path, timeout=10) as response:
            return response.read()

    def status(self) -> dict:
        return json.loads(self.get("/status.json"))

    def post(self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> str:
        page = self.get("/").decode()
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        if match is None:
            raise DemoError("no CSRF token in the page")
        fields = {"csrfmiddlewaretoken": match.group(1), **fields}
        boundary = uuid.uuid4().hex
        parts = []
        for name, value in fields.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
        for name, (filename, content) in files.items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
                + content
                + b"\r\n"
            )
        parts.append(f"--{boundary}--\r\n".encode())
        request = urllib.request.Request(
            self.base_url + path,
            data=b"".join(parts),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        with self.opener.open(request, timeout=10) as response:
            return response.read().decode()


def wait_for(what: str, condition, timeout: float = SMOKE_TIMEOUT):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise DemoError(f"timed out after {timeout:g} s waiting for {what}")


def upload_state(browser: Browser, name: str) -> dict | None:
    return next((u for u in browser.status()["uploads"] if u["name"] == name), None)


def check_thumbnails(browser: Browser, upload: dict) -> str:
    for thumbnail in upload["thumbnails"]:
        data = browser.get(thumbnail["url"])
        if not data.startswith(b"\xff\xd8"):
            raise DemoError(f"{thumbnail['url']} is not a JPEG")
        if max(thumbnail["width"], thumbnail["height"]) > thumbnail["size"]:
            raise DemoError(f"{thumbnail['url']} is larger than {thumbnail['size']} px")
    return ", ".join(f"{t['width']}x{t['height']}" for t in upload["thumbnails"])


def smoke(demo: Demo) -> None:
    browser = Browser(demo.base_url)
    for name, size in (("smoke.png", (320, 200)), ("smoke-wide.png", (640, 120))):
        say(f"smoke: uploading {name} over HTTP")
        browser.post("/", {"delay": "0"}, {"file": (name, png(*size))})
        upload = wait_for(
            f"the worker to make the thumbnails of {name}",
            lambda name=name: (u := upload_state(browser, name)) and u["state"] == "done" and u,
        )
        sizes = check_thumbnails(browser, upload)
        say(f"smoke: thumbnails made by the worker and served over HTTP: {sizes}")

    say("smoke: uploading a file that is not an image")
    browser.post("/", {"delay": "0"}, {"file": ("broken.png", b"not a picture")})
    broken = wait_for(
        "broken.png to fail",
        lambda: (u := upload_state(browser, "broken.png")) and u["state"] == "failed" and u,
    )
    say(f"smoke: broken.png failed for good: {broken['detail']}")
    browser.post(f"/uploads/{broken['id']}/fix/", {}, {})
    browser.post(f"/uploads/{broken['id']}/again/", {}, {})
    wait_for(
        "the fixed upload to get its thumbnails",
        lambda: (u := upload_state(browser, f"fixed-{broken['id']}.png")) and u["state"] == "done",
    )
    say(f"smoke: its file fixed and enqueued again, upload #{broken['id']} is done")

    say("smoke: starting the colour backfill (two uploads per step, then Requeue)")
    browser.post("/colours/", {}, {})
    wait_for(
        "the colour backfill to finish",
        lambda: (
            (s := browser.status())["backfill"] is None
            and all(u["colour"] for u in s["uploads"] if u["state"] == "done")
        ),
    )
    assert demo.worker is not None
    if not any("requeued to continue" in line for line in demo.worker.lines):
        raise DemoError("the colour backfill never returned Requeue")
    colours = {u["name"]: u["colour"] for u in browser.status()["uploads"] if u["colour"]}
    say(f"smoke: average colours, filled in over two steps: {colours}")

    cleanup = wait_for(
        "the worker to register the nightly clean-up", lambda: browser.status()["cleanup"]
    )
    say(
        f"smoke: the nightly clean-up ({cleanup['expression']}) runs next at {cleanup['next_tick']}"
    )


# Main ------------------------------------------------------------------------------


def banner(demo: Demo, database: str) -> None:
    url = demo.base_url
    lines = [
        "",
        "The demo is running:",
        f"  the demo       {url}/",
        f"  the admin      {url}/admin/  (user {USERNAME}, password {PASSWORD})",
        f"  failed tasks   {url}/admin/django_taskqueue/failedtask/",
        f"  database       {database}",
        "Press Ctrl-C to stop the web server and the worker.",
        "",
    ]
    for line in lines:
        say(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--port", type=int, help="Port of the web server (default: 8000 or next free)."
    )
    parser.add_argument(
        "--venv",
        type=Path,
        default=REPO / ".venv",
        help="Virtual environment to create or reuse (default: %(default)s).",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="Upload an image over HTTP, wait for its thumbnails, stop; exit 0 if all went "
        "well. Uses a temporary media folder, and a temporary SQLite database unless "
        "DATABASE_URL is set.",
    )
    options = parser.parse_args(argv)
    if sys.version_info < (3, 11):  # noqa: UP036 - whatever python3 is runs this file
        say("django-taskqueue needs Python 3.11 or newer")
        return 1

    scratch = tempfile.mkdtemp(prefix="taskqueue-demo-") if options.smoke else None
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "demo_site.settings"}
    env.pop("PYTHONPATH", None)
    if scratch:
        # A DATABASE_URL given for a smoke run is used as is: point it at a scratch database.
        env.setdefault("DATABASE_URL", f"sqlite:///{scratch}/db.sqlite3")
        env["MEDIA_ROOT"] = f"{scratch}/media"
    database = env.get("DATABASE_URL") or f"SQLite, {HERE / 'db.sqlite3'}"

    demo: Demo | None = None
    code = 1
    try:
        python = ensure_venv(options.venv.resolve(), env.get("DATABASE_URL", ""))
        port = free_port() if options.smoke else choose_port(options.port)
        say("migrating the database")
        manage(python, env, "migrate", "--noinput", "--verbosity", "0")
        manage(python, env, "demo_user", "--username", USERNAME, "--password", PASSWORD)
        demo = Demo(python, env, port)
        demo.install_signal_handlers()
        demo.start()
        if options.smoke:
            smoke(demo)
            code = 0
        else:
            banner(demo, database)
            code = demo.wait_until_stopped()
    except DemoError as exc:
        say(f"error: {exc}")
    except subprocess.CalledProcessError as exc:
        say(f"error: {' '.join(map(str, exc.cmd))} exited with code {exc.returncode}")
    except KeyboardInterrupt:
        say("interrupted")
    finally:
        if demo is not None:
            codes = demo.stop()
            say("stopped: " + ", ".join(f"{name} exit code {c}" for name, c in codes.items()))
            if codes.get("worker") != 0:
                code = 1
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if options.smoke:
        say("smoke run passed" if code == 0 else "smoke run FAILED")
    return code


if __name__ == "__main__":
    sys.exit(main())
