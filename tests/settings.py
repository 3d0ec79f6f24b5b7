"""Settings for the test suite. DATABASE_URL picks the database (default: SQLite)."""

import importlib.util
import json
import multiprocessing
import os
from pathlib import Path

import django
import environ

BASE_DIR = Path(__file__).resolve().parent
env = environ.Env()

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_taskqueue",
    "tests",
]
if django.VERSION < (6, 0) and importlib.util.find_spec("django_tasks"):
    # Django 5.2: the tasks framework comes from its backport.
    INSTALLED_APPS.append("django_tasks")

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

STATIC_URL = "/static/"

_sqlite_file = BASE_DIR.parent / ".test-db.sqlite3"
DATABASES = {
    "default": env.db_url_config(os.environ.get("DATABASE_URL") or f"sqlite:///{_sqlite_file}")
}
_db = DATABASES["default"]
if "sqlite" in _db["ENGINE"]:
    # Worker processes share the test database, so it must be a file, not :memory:.
    _db["TEST"] = {"NAME": str(BASE_DIR.parent / ".test-db-test.sqlite3")}
    _db["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif "mysql" in _db["ENGINE"]:
    _db.setdefault("OPTIONS", {})["charset"] = "utf8mb4"
    _db["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_bin"}

# A second alias: a queue on another database (tests/test_second_database.py).
_other = DATABASES["other"] = {**_db, "TEST": dict(_db.get("TEST", {}))}
if "sqlite" in _db["ENGINE"]:
    _other["NAME"] = str(BASE_DIR.parent / ".test-db-other.sqlite3")
    _other["TEST"]["NAME"] = str(BASE_DIR.parent / ".test-db-other-test.sqlite3")
else:
    # NAME is a database that exists (the default's), for processes started before the
    # test databases are; the tests use a database of its own, created for them.
    _other["TEST"]["NAME"] = f"test_{_db['NAME']}_other"

# Runs side by side on one machine keep apart with TASKQUEUE_TEST_RUN=<a name>: each
# gets test databases (and SQLite files) of its own.
if _run := os.environ.get("TASKQUEUE_TEST_RUN", ""):
    for _alias in (_db, _other):
        _test = _alias.setdefault("TEST", {})
        if "sqlite" in _db["ENGINE"]:
            _alias["NAME"] = str(_alias["NAME"]).replace(".sqlite3", f"-{_run}.sqlite3")
            _test["NAME"] = str(_test["NAME"]).replace(".sqlite3", f"-{_run}.sqlite3")
        else:
            _test["NAME"] = _test.get("NAME", f"test_{_db['NAME']}") + f"_{_run}"

# A worker process started by a test connects to the test databases the test made.
if os.environ.get("TASKQUEUE_TEST_DATABASE_NAME"):
    _db["NAME"] = os.environ["TASKQUEUE_TEST_DATABASE_NAME"]
if os.environ.get("TASKQUEUE_TEST_OTHER_DATABASE_NAME"):
    _other["NAME"] = os.environ["TASKQUEUE_TEST_OTHER_DATABASE_NAME"]
# ... and through the network-fault proxy when a test says so (tests/proxy.py).
if os.environ.get("TASKQUEUE_TEST_DATABASE_PORT"):
    _db["HOST"], _db["PORT"] = "127.0.0.1", os.environ["TASKQUEUE_TEST_DATABASE_PORT"]

TASKQUEUE = {
    "POLL_INTERVAL": float(os.environ.get("TASKQUEUE_TEST_POLL_INTERVAL", "0.2")),
    "LOCK_TIMEOUT": float(os.environ.get("TASKQUEUE_TEST_LOCK_TIMEOUT", "300")),
    # "generic" runs the suite on the ORM implementation of the database layer.
    "DATABASE_LAYER": os.environ.get("TASKQUEUE_TEST_DATABASE_LAYER") or None,
    # Periodic tasks for worker processes a test starts (a JSON object by name).
    "SCHEDULE": json.loads(os.environ.get("TASKQUEUE_TEST_SCHEDULE", "{}")),
}

TASKS = {
    "default": {
        "BACKEND": "django_taskqueue.backends.TaskQueueBackend",
        "QUEUES": ["default", "emails", "reports"],
        "OPTIONS": {"RETRY_MAX": 0},
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_taskqueue": {"handlers": ["console"], "level": "WARNING"}},
}

# A supervised worker process that cannot even start (tests/test_supervisor.py): each
# child of the supervisor exits at once, so the supervisor's pause can be seen.
if os.environ.get(
    "TASKQUEUE_TEST_CHILDREN_EXIT"
) and multiprocessing.current_process().name.startswith("taskqueue-worker"):
    raise SystemExit(int(os.environ["TASKQUEUE_TEST_CHILDREN_EXIT"]))
