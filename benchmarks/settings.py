"""Settings for the benchmark's worker processes. DATABASE_URL picks the database."""

import json
import os

import environ

SECRET_KEY = "benchmarks-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django_taskqueue", "benchmarks"]
DATABASES = {"default": environ.Env.db_url_config(os.environ["DATABASE_URL"])}
if "sqlite" in DATABASES["default"]["ENGINE"]:
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
# BENCH_DB_OPTIONS: JSON merged into the database's OPTIONS, to measure a configuration
# such as {"server_side_binding": true, "prepare_threshold": 5} on PostgreSQL.
if os.environ.get("BENCH_DB_OPTIONS"):
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        json.loads(os.environ["BENCH_DB_OPTIONS"])
    )
TASKQUEUE: dict[str, object] = {}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_taskqueue": {"handlers": ["console"], "level": "WARNING"}},
}
