import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_taskqueue import checks as checks_module
from django_taskqueue.checks import (
    RULES,
    check_database_support,
    check_databases,
    check_settings,
)
from django_taskqueue.conf import DEFAULTS, conf


def ids(messages):
    return [m.id for m in messages]


def test_defaults_pass(settings):
    del settings.TASKQUEUE
    assert check_settings() == []
    assert check_databases() == []


def test_not_a_dict(settings):
    settings.TASKQUEUE = ["WORKER_COUNT", 4]
    assert ids(check_settings()) == ["django_taskqueue.E001"]


def test_unknown_key(settings):
    settings.TASKQUEUE = {"WORKERS_COUNT": 4}
    [error] = check_settings()
    assert error.id == "django_taskqueue.E002"
    assert "'WORKERS_COUNT'" in error.msg
    assert "WORKER_COUNT" in error.hint


BAD_VALUES = {
    "WORKER_COUNT": [0, -1, "4", 2.0, True],
    "BUFFER_SIZE": [0, None],
    "DATABASE_LAYER": ["oracle", "django_taskqueue.models.Task", "no.such.Class", 3],
    "DEFAULT_PRIORITY": ["16", 1.5, 40000],
    "DEFAULT_RETRY_MAX": [-1, None],
    "RUN_IMMEDIATE_PRIORITY": ["x", -40000],
    "RUN_IMMEDIATE_WORKERS": [0],
    "POLL_STORAGE": [1, "yes"],
    "POLL_INTERVAL": [0, -1, "1", float("nan")],
    "LOCK_TIMEOUT": [0, 0.5, None],
    "PREPROCESSORS": ["a.b", [1]],
    "AUTODISCOVER": ["", 5],
    "DATABASE": ["no_such_alias", None],
    "MAX_ARGUMENTS_SIZE": [0, 1.5],
    "BACKOFF_EXPONENT_CAP": [-1, 31],
    "RESULT_TTL": [0, -5, "3600", float("inf")],
    "FAILED_TASK_RETENTION": [0, -1, "30d", float("nan")],
    "TASK_TIMEOUT": [0, -1, "30", float("inf")],
    "PREPARE_STATEMENTS": [1, "no", None],
    "SCHEDULE": [[], "nightly", None],
    "METRICS": [1, "yes", None],
}


def test_every_rule_has_bad_values_listed():
    assert set(BAD_VALUES) == set(RULES)


@pytest.mark.parametrize(
    ("key", "value"), [(k, v) for k, values in BAD_VALUES.items() for v in values]
)
def test_bad_value_has_its_own_id(settings, key, value):
    settings.TASKQUEUE = {key: value}
    [error] = check_settings()
    assert error.id == f"django_taskqueue.{RULES[key][0]}"
    assert key in error.msg
    assert repr(DEFAULTS[key]) in error.hint


def test_good_values_pass(settings):
    settings.TASKQUEUE = {
        "WORKER_COUNT": 2,
        "RUN_IMMEDIATE_PRIORITY": 4,
        "POLL_INTERVAL": 0.5,
        "LOCK_TIMEOUT": 60,
        "AUTODISCOVER": None,
        "PREPROCESSORS": ["tests.test_enqueue.reject_secret"],
        "PREPARE_STATEMENTS": False,
    }
    assert check_settings() == []


def test_preprocessor_must_import_and_be_callable(settings):
    settings.TASKQUEUE = {
        "PREPROCESSORS": ["tests.nothing_here.fn", "django_taskqueue.conf.DEFAULTS"]
    }
    errors = check_settings()
    assert ids(errors) == ["django_taskqueue.E017", "django_taskqueue.E017"]
    assert "cannot be imported" in errors[0].msg
    assert "is not callable" in errors[1].msg


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_unsupported_database(settings):
    settings.DATABASES = {**settings.DATABASES, "oracle": {"ENGINE": "django.db.backends.oracle"}}
    settings.TASKQUEUE = {"DATABASE": "oracle"}
    assert ids(check_databases()) == ["django_taskqueue.E018"]


def test_every_check_id_names_one_problem():
    # Every id in the module, whether in the table of rules or in an Error() of its own.
    source = Path(checks_module.__file__).read_text()
    found = re.findall(r'"(?:django_taskqueue\.)?(E\d{3})"', source)
    assert len(found) > len(RULES)
    assert sorted(i for i in set(found) if found.count(i) > 1) == []


def test_database_layer_setting(settings):
    settings.TASKQUEUE = {"DATABASE_LAYER": "generic"}
    assert check_settings() == []
    settings.TASKQUEUE = {"DATABASE_LAYER": "django_taskqueue.db.generic.GenericDatabase"}
    assert check_settings() == []


def test_database_support_is_checked_with_the_database(settings):
    assert check_database_support(databases=["default"]) == []
    assert check_database_support(databases=None) == []


def test_check_command_fails_on_bad_settings(settings):
    settings.TASKQUEUE = {"WORKER_COUNT": 0}
    with pytest.raises(SystemCheckError, match=r"django_taskqueue\.E003"):
        call_command("check")


def test_settings_are_read_lazily(settings):
    settings.TASKQUEUE = {"WORKER_COUNT": 3}
    assert conf.WORKER_COUNT == 3
    settings.TASKQUEUE = {}
    assert conf.WORKER_COUNT == 16


def test_use_tz_is_required(settings):
    settings.USE_TZ = False
    assert ids(check_databases()) == ["django_taskqueue.E024"]
