"""factory-boy factories for queue rows in the states tests need."""

from datetime import timedelta

import factory
from django.utils import timezone

from django_taskqueue.models import FailedTask, Task, uuid7


class TaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Task

    id = factory.LazyFunction(uuid7)
    name = "tests.record"
    arguments = factory.LazyFunction(dict)
    priority = 16
    retry_max = 8
    created_at = factory.LazyFunction(timezone.now)
    start_at = factory.LazyFunction(timezone.now)

    class Params:
        scheduled = factory.Trait(
            start_at=factory.LazyFunction(lambda: timezone.now() + timedelta(hours=1))
        )
        running = factory.Trait(
            lock_id=factory.LazyFunction(uuid7),
            locked_until=factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=5)),
        )
        stale = factory.Trait(
            lock_id=factory.LazyFunction(uuid7),
            locked_until=factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=1)),
        )


class FailedTaskFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FailedTask

    task_id = factory.LazyFunction(uuid7)
    name = "tests.record"
    arguments = factory.LazyFunction(dict)
    error = "Traceback (most recent call last):\nValueError: boom"
    retry_count = 8
