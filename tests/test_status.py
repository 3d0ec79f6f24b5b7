"""taskqueue_status and django_taskqueue.status: real rows, real counts."""

import json
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from django_taskqueue import status
from django_taskqueue.constants import FRAMEWORK_TASK
from django_taskqueue.db import queue_db
from django_taskqueue.models import Task, WorkerRecord
from tests.factories import FailedTaskFactory, TaskFactory

pytestmark = pytest.mark.django_db


def worker(now, *, alive=True, queues=(), hostname="web-1", **fields):
    return WorkerRecord.objects.create(
        id=uuid.uuid4(),
        hostname=hostname,
        pid=4242,
        queues=list(queues),
        threads=8,
        version="1.0",
        started_at=now - timedelta(hours=1),
        last_seen=now if alive else now - timedelta(minutes=5),
        expires_at=now + timedelta(minutes=1) if alive else now - timedelta(minutes=4),
        **fields,
    )


@pytest.fixture
def now():
    return queue_db("default").database_now()


@pytest.fixture
def queue(now):
    """3 ready and 1 scheduled in "default" (one of each a framework task), 2 running
    and 1 stale in "emails"."""
    TaskFactory(queue="default", name="shop.resize", start_at=now - timedelta(minutes=10))
    TaskFactory(queue="default", name="shop.resize", start_at=now - timedelta(minutes=1))
    TaskFactory(
        queue="default",
        name=FRAMEWORK_TASK,
        arguments={"path": "shop.tasks.notify"},
        start_at=now - timedelta(seconds=1),
    )
    TaskFactory(queue="default", name="shop.resize", scheduled=True)
    TaskFactory.create_batch(2, queue="emails", name="mail.send", running=True)
    TaskFactory(queue="emails", name="mail.send", stale=True)


def counts(**given):
    return {"scheduled": 0, "ready": 0, "running": 0, "stale": 0, **given}


def test_count_tasks_per_queue_and_state(queue, now):
    rows = status.count_tasks("default", now)
    assert rows == [
        status.CountRow("default", None, counts(ready=3, scheduled=1), estimated=False),
        status.CountRow("emails", None, counts(running=2, stale=1), estimated=False),
    ]


def test_count_tasks_by_name_counts_framework_tasks_under_their_path(queue, now):
    rows = status.count_tasks("default", now, by_name=True)
    assert [(row.queue, row.name, row.counts) for row in rows] == [
        ("default", "shop.resize", counts(ready=2, scheduled=1)),
        ("default", "shop.tasks.notify", counts(ready=1)),
        ("emails", "mail.send", counts(running=2, stale=1)),
    ]


def test_counts_past_the_limit_are_capped_lower_bounds(queue, now):
    rows = status.count_tasks("default", now, limit=2)
    assert all(row.estimated for row in rows)
    # Ready (3) went past 2 rows; running (2), scheduled and stale (1) did not.
    assert {row.capped for row in rows} == {frozenset({"ready"})}
    ready = sum(row.counts["ready"] for row in rows)
    assert ready == 3  # the limit and one row: enough to know there are more
    assert rows[1].counts["running"] == 2


def test_no_task_no_row(now):
    assert status.count_tasks("default", now) == []


def test_totals_sum_the_rows_or_mark_them(queue, now):
    rows = status.count_tasks("default", now, limit=2)
    totals = status.count_totals("default", now, rows)
    assert totals.counts["scheduled"] == 1
    assert totals.counts["stale"] == 1
    # Where the database estimates (PostgreSQL), a capped total is its estimate.
    assert totals.capped | totals.estimated == {"ready"}
    if queue_db("default").estimated_count(Task.objects.all()) is None:
        assert totals.capped == {"ready"}
        assert totals.counts["ready"] == 3


def test_oldest_due_skips_priorities_and_queues(now):
    TaskFactory(priority=0, start_at=now - timedelta(minutes=1))
    TaskFactory(priority=5, start_at=now - timedelta(minutes=30), queue="emails")
    TaskFactory(priority=9, start_at=now - timedelta(minutes=7))
    # Older, but claimed or not due: not waiting.
    TaskFactory(priority=9, start_at=now - timedelta(hours=2), running=True)
    TaskFactory(priority=1, start_at=now + timedelta(hours=1))
    db = queue_db("default")
    assert db.oldest_due(now) == now - timedelta(minutes=30)
    assert db.oldest_due(now, ("default",)) == now - timedelta(minutes=7)
    assert db.oldest_due(now, ("reports",)) is None


def test_oldest_due_past_the_probed_priorities(now, monkeypatch):
    from django_taskqueue.db import records

    monkeypatch.setattr(records, "PRIORITIES_SKIPPED", 1)
    TaskFactory(priority=0, start_at=now - timedelta(minutes=1))
    TaskFactory(priority=3, start_at=now - timedelta(minutes=9))
    TaskFactory(priority=4, start_at=now - timedelta(minutes=4))
    assert queue_db("default").oldest_due(now) == now - timedelta(minutes=9)


def test_queue_status(queue, now):
    FailedTaskFactory(failed_at=now - timedelta(minutes=59))
    FailedTaskFactory(failed_at=now - timedelta(minutes=61))
    live = worker(now, hostname="b")
    dead = worker(now, alive=False, hostname="a")
    WorkerRecord.objects.filter(pk=worker(now, hostname="c").pk).update(stopped_at=now)
    found = status.queue_status("default")
    assert found.failed_last_hour == 1
    assert [w.pk for w in found.workers] == [live.pk, dead.pk]  # live first
    assert [w.pk for w in found.live_workers] == [live.pk]
    assert found.oldest_due == now - timedelta(minutes=10)
    assert timedelta(minutes=10) <= found.lag < timedelta(minutes=11)


def status_json(*args):
    out = StringIO()
    call_command("taskqueue_status", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_json_shape(queue, now):
    FailedTaskFactory(failed_at=now - timedelta(minutes=5))
    live = worker(now, queues=["emails"], succeeded=7, running=2)
    worker(now, alive=False, hostname="old")
    document = status_json()
    assert set(document) == {
        "version", "database", "now", "count_limit", "tasks", "totals",
        "oldest_due", "lag_seconds", "failed_last_hour", "paused_queues", "workers",
    }  # fmt: skip
    assert document["version"] == 1
    assert document["database"] == "default"
    assert document["count_limit"] == status.COUNT_LIMIT
    assert document["tasks"] == [
        {"queue": "default", "name": None, "counts": counts(ready=3, scheduled=1),
         "estimated": False, "capped": []},
        {"queue": "emails", "name": None, "counts": counts(running=2, stale=1),
         "estimated": False, "capped": []},
    ]  # fmt: skip
    assert document["totals"] == {
        "counts": counts(ready=3, scheduled=1, running=2, stale=1),
        "estimated": [],
        "capped": [],
    }
    assert 600 <= document["lag_seconds"] < 660
    assert document["failed_last_hour"] == 1
    first, second = document["workers"]
    assert first == {
        "id": str(live.pk),
        "alive": True,
        "hostname": "web-1",
        "pid": 4242,
        "queues": ["emails"],
        "threads": 8,
        "version": "1.0",
        "started_at": live.started_at.isoformat(),
        "last_seen": live.last_seen.isoformat(),
        "expires_at": live.expires_at.isoformat(),
        "succeeded": 7,
        "failed": 0,
        "retried": 0,
        "timed_out": 0,
        "running": 2,
    }
    assert (second["hostname"], second["alive"]) == ("old", False)


def test_json_by_name_and_empty_queue():
    document = status_json("--by-name")
    assert document["tasks"] == []
    assert document["lag_seconds"] is None
    assert document["oldest_due"] is None
    assert document["workers"] == []
    TaskFactory(name="shop.resize")
    assert [row["name"] for row in status_json("--by-name")["tasks"]] == ["shop.resize"]


def test_json_marks_capped_counts(queue):
    document = status_json("--count-limit", "2")
    assert document["count_limit"] == 2
    assert all(row["estimated"] and row["capped"] == ["ready"] for row in document["tasks"])
    assert "ready" in document["totals"]["capped"] + document["totals"]["estimated"]


def status_text(*args):
    out = StringIO()
    call_command("taskqueue_status", *args, stdout=out)
    return out.getvalue()


def test_table(queue, now):
    worker(now, queues=["default", "emails"], succeeded=1234)
    worker(now, alive=False, hostname="gone")
    FailedTaskFactory(failed_at=now - timedelta(minutes=5))
    text = status_text()
    lines = text.splitlines()
    assert lines[0].startswith("Tasks on database 'default' at ")
    assert lines[1].split() == ["queue", "ready", "scheduled", "running", "stale"]
    assert lines[2].split() == ["default", "3", "1", "0", "0"]
    assert lines[3].split() == ["emails", "0", "0", "2", "1"]
    assert lines[4].split() == ["(all)", "3", "1", "2", "1"]
    assert "Lag: 10.0 min (the oldest due task waits since " in text
    assert "Failed in the last hour: 1\n" in text
    assert "Workers: 1 live, 1 dead\n" in text
    web = next(line for line in lines if line.startswith("web-1"))
    assert web.split()[:3] == ["web-1", "4242", "default,emails"]
    assert "1,234" in web
    assert not web.endswith("DEAD")
    assert next(line for line in lines if line.startswith("gone")).endswith("DEAD")
    assert "N+" not in text


def test_table_by_name_marks_capped_counts(queue):
    text = status_text("--by-name", "--count-limit", "2")
    lines = text.splitlines()
    assert lines[1].split() == ["queue", "name", "ready", "scheduled", "running", "stale"]
    assert lines[2].split() == ["default", "shop.resize", "2+", "1", "0", "0"]
    assert lines[3].split() == ["default", "shop.tasks.notify", "1+", "0", "0", "0"]
    assert lines[4].split() == ["emails", "mail.send", "0+", "0", "2", "1"]
    assert "more than the 2 rows counted per state" in text
    total = lines[5].split()
    assert total[0] == "(all)"
    # A lower bound, or where the database estimates (PostgreSQL), its estimate.
    assert total[1] == "3+" or total[1].startswith("~")


def test_table_of_an_empty_queue():
    text = status_text()
    assert "none queued" in text
    assert "Lag: none (no due task waits)" in text
    assert "Workers: 0 live, 0 dead" in text


def test_the_command_and_the_module_count_as_many_rows():
    from django_taskqueue.management.commands import taskqueue_status

    assert taskqueue_status.COUNT_LIMIT == status.COUNT_LIMIT


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--database", "nope"], r"'nope' is not in settings\.DATABASES"),
        (["--count-limit", "0"], "'0' must be at least 1"),
        (["--count-limit", "many"], "'many' is not an integer"),
    ],
)
def test_bad_options(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("taskqueue_status", *args)


@pytest.mark.parametrize("name", ["taskqueue_status", "taskqueue_health"])
def test_every_option_shows_its_default(name):
    from django.core.management import load_command_class

    parser = load_command_class("django_taskqueue", name).create_parser("manage.py", name)
    helps = {a.option_strings[0]: a.help or "" for a in parser._actions if a.option_strings}
    ours = {
        "--by-name", "--json", "--count-limit", "--database",
        "--min-workers", "--queue", "--max-lag",
    }  # fmt: skip
    assert ours & helps.keys()
    for option in ours & helps.keys():
        assert "(default: " in helps[option] and helps[option].endswith(")."), option
