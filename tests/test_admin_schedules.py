"""The schedules' admin: the list, "run now", enabling and disabling."""

from datetime import time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from django_taskqueue.db import queue_db
from django_taskqueue.models import ScheduleRecord, Task
from django_taskqueue.periodic_tasks import declared
from django_taskqueue.worker.scheduler import Scheduler

pytestmark = pytest.mark.django_db

SCHEDULES = reverse("admin:django_taskqueue_schedulerecord_changelist")


@pytest.fixture
def nightly(taskqueue_settings):
    taskqueue_settings["SCHEDULE"] = {
        "nightly": {
            "task": "tests.record",
            "cron": "30 3 * * *",
            "timezone": "Europe/Riga",
            "arguments": {"kind": "nightly"},
        }
    }
    Scheduler(queue_db("default"), declared()).run_due(timezone.now())
    return ScheduleRecord.objects.get(name="nightly")


def act(client, action, records):
    data = {"action": action, "index": 0, ACTION_CHECKBOX_NAME: [str(r.pk) for r in records]}
    return client.post(SCHEDULES, data)


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_list_shows_expression_zone_and_next_tick(admin_client, nightly):
    response = admin_client.get(SCHEDULES)
    assert response.status_code == 200
    page = response.content.decode()
    assert "30 3 * * *" in page
    assert "Europe/Riga" in page
    next_tick = response.context["cl"].model_admin.next_tick(nightly)
    assert next_tick.astimezone(ZoneInfo("Europe/Riga")).time() == time(3, 30)
    assert timedelta(0) < next_tick - timezone.now() <= timedelta(days=1)


def test_run_now_enqueues_the_task_and_writes_the_admin_log(admin_client, nightly):
    response = act(admin_client, "run_now", [nightly])
    assert messages_of(response) == ["Enqueued 1 schedule's task."]
    task = Task.objects.get()
    assert (task.name, task.arguments) == ("tests.record", {"kind": "nightly"})
    entry = LogEntry.objects.get()
    assert entry.object_id == str(nightly.pk)
    assert "Ran now" in entry.get_change_message()


def test_run_now_refuses_a_schedule_this_deployment_does_not_declare(admin_client, nightly):
    ScheduleRecord.objects.create(
        name="gone",
        task="tests.record",
        expression="@daily",
        time_zone="UTC",
        last_tick=timezone.now(),
    )
    gone = ScheduleRecord.objects.get(name="gone")
    response = act(admin_client, "run_now", [gone])
    assert messages_of(response) == ["gone is not declared in this deployment; nothing was run."]
    assert not Task.objects.exists()
    page = admin_client.get(SCHEDULES).content.decode()
    assert page.count('alt="False"') == 1  # "declared" is False for "gone" only


def test_disable_then_enable_starts_again_from_now(admin_client, nightly):
    ScheduleRecord.objects.update(last_tick=timezone.now() - timedelta(days=3))
    act(admin_client, "disable", [nightly])
    assert not ScheduleRecord.objects.get().enabled
    before = timezone.now()
    response = act(admin_client, "enable", [nightly])
    assert messages_of(response)[-1] == "1 schedule enabled."
    record = ScheduleRecord.objects.get()
    assert record.enabled
    assert record.last_tick >= before  # the ticks missed while disabled do not fire
    assert [e.get_change_message() for e in LogEntry.objects.order_by("pk")] == [
        "Disabled",
        "Enabled",
    ]


def test_the_change_form_edits_only_the_enabled_flag(admin_client, nightly):
    url = reverse("admin:django_taskqueue_schedulerecord_change", args=[nightly.pk])
    response = admin_client.post(url, {"enabled": ""})
    assert response.status_code == 302
    record = ScheduleRecord.objects.get()
    assert not record.enabled
    assert record.expression == "30 3 * * *"
    assert admin_client.get(reverse("admin:django_taskqueue_schedulerecord_add")).status_code == 403
