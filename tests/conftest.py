import pytest

from django_taskqueue.registry import registry


@pytest.fixture
def consumers():
    """Register test-local consumers; the registry is restored afterwards."""
    saved = registry._registry
    yield registry
    registry._registry = saved


@pytest.fixture
def taskqueue_settings(settings):
    """Edit settings.TASKQUEUE for one test."""
    settings.TASKQUEUE = dict(settings.TASKQUEUE)
    return settings.TASKQUEUE


@pytest.fixture(scope="session", autouse=True)
def _database_features(django_db_setup, django_db_blocker):
    """Django 6.1's model checks ask every database whether it has a JSON field; ask
    once here, so that tests that run the system checks need no database of their own
    (the test settings have a second alias, "other")."""
    from django.db import connections

    with django_db_blocker.unblock():
        for alias in connections:
            connections[alias].features.supports_json_field  # noqa: B018 - cached here
