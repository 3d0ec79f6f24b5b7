"""The test command, runtests.py: what it runs and what it says it skipped."""

import importlib.util

import pytest

from tests.processes import ROOT

spec = importlib.util.spec_from_file_location("runtests", ROOT / "runtests.py")
runtests = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runtests)


def test_the_default_envs_are_tox_ini_s_env_list_expanded():
    envs = runtests.default_envs()
    assert "lint" in envs
    assert "py311-django52-sqlite" in envs
    assert "py313-django61-mysql-generic" in envs
    assert not [e for e in envs if "{" in e]


def test_an_unreachable_database_is_skipped_and_said_so(monkeypatch, capsys):
    monkeypatch.setenv("TASKQUEUE_MYSQL_URL", "mysql://root@127.0.0.1:9/test")
    envs, skipped, _ = runtests.choose(
        ["lint", "py311-django52-sqlite", "py311-django52-mysql"], strict=False
    )
    assert "py311-django52-mysql" not in envs
    assert "py311-django52-sqlite" in envs
    assert any("MariaDB/MySQL at 127.0.0.1:9 does not answer" in s for s in skipped)


def test_under_ci_nothing_may_be_skipped(monkeypatch):
    monkeypatch.setenv("TASKQUEUE_POSTGRES_URL", "postgres://postgres@127.0.0.1:9/test")
    with pytest.raises(SystemExit, match="missing: PostgreSQL"):
        runtests.choose(["py311-django52-postgres"], strict=True)


def test_a_missing_python_is_skipped(monkeypatch):
    monkeypatch.setattr(runtests, "find_python", lambda version: None)
    envs, skipped, _ = runtests.choose(["lint", "py399-django52-sqlite"], strict=False)
    assert envs == ["lint"]
    assert skipped == ["Python 3.99 is not installed: skipped py399-django52-sqlite"]
