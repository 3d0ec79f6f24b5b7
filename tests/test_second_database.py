"""A queue on a second database alias: TASKQUEUE["DATABASE"], enqueue(using=...) and the
worker's --database, each keeping to its database."""

import pytest
from django.core.management import call_command

from django_taskqueue import enqueue
from django_taskqueue.models import Task
from django_taskqueue.worker import Worker
from tests.models import Run

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "other"])


def queued(alias):
    return list(Task.objects.using(alias).values_list("name", flat=True))


def test_enqueue_using_stores_on_that_database_only():
    task = enqueue("tests.noop", using="other")
    assert task._state.db == "other"
    assert queued("other") == ["tests.noop"]
    assert queued("default") == []


def test_the_database_setting_moves_the_queue(taskqueue_settings):
    taskqueue_settings["DATABASE"] = "other"
    enqueue("tests.noop")
    assert queued("other") == ["tests.noop"]
    assert queued("default") == []


def test_a_worker_on_one_alias_leaves_the_others_queue_alone():
    enqueue("tests.record", {"on": "other"}, using="other")
    enqueue("tests.record", {"on": "default"})
    Worker(burst=True, listen=False, workers=1, using="other").run()
    assert queued("other") == []
    assert queued("default") == ["tests.record"]
    # The consumer's own writes go to its models' database, as usual.
    assert list(Run.objects.values_list("arguments", flat=True)) == [{"on": "other"}]


def test_the_command_takes_its_queue_from_database():
    enqueue("tests.noop", using="other")
    enqueue("tests.noop")
    call_command("taskqueue_worker", "--burst", "--database", "other")
    assert queued("other") == []
    assert queued("default") == ["tests.noop"]
