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
