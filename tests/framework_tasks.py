"""Tasks written against Django's tasks framework, run by the queue in the tests."""

import asyncio

import django

from .models import Run

if django.VERSION >= (6, 0):
    from django.tasks import task
else:
    from django_tasks import task


@task
def add(a, b):
    return a + b


@task
def record(label):
    Run.objects.create(task_id="00000000-0000-0000-0000-000000000000", name=label)
    return label


@task
async def async_multiply(a, b):
    await asyncio.sleep(0)
    return a * b


@task(takes_context=True)
def with_context(context, value):
    return {
        "id": context.task_result.id,
        "attempt": context.attempt,
        "status": str(context.task_result.status),
        "value": value,
    }


@task
def fail(message):
    raise ValueError(message)


@task(retry_max=1)
def fail_twice(message):
    raise ValueError(message)


@task(takes_context=True)
def flaky(context):
    """Fails on the first attempt, succeeds on any later one."""
    if context.attempt == 1:
        raise RuntimeError("first attempt fails")
    return context.attempt


@task(queue_name="emails")
def send_email(to):
    Run.objects.create(task_id="00000000-0000-0000-0000-000000000000", name=f"email:{to}")
    return to


@task
def unserialisable():
    return object()


@task
def not_a_number():
    Run.objects.create(task_id="00000000-0000-0000-0000-000000000001", name="nan")
    return float("nan")


@task(retry_max=3)
def too_big():
    Run.objects.create(task_id="00000000-0000-0000-0000-000000000002", name="too big")
    return "x" * (2 * 1024 * 1024)


@task(timeout=2.5)
def limited():
    return 1


@task(backoff=[4], give_up_on=(KeyError,), retry_max=5)
def give_up_on_lookup(missing):
    if missing:
        raise KeyError("gone for good")
    raise RuntimeError("try again")
