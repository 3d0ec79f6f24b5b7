"""The admin on big tables: bounded counts and how they are marked, filter choices that
read nothing of the task table, a search that leaves the errors alone, facet counts
over a bounded number of rows, pages read in index order, and no models.W037.

The limits are lowered on the registered admins, so that a few rows take the paths a
million would."""

import subprocess
import sys
from datetime import timedelta

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.db import connection, models
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_taskqueue.admin.filters import NameFilter, QueueFilter
from django_taskqueue.constants import FRAMEWORK_TASK
from django_taskqueue.db import queue_db
from django_taskqueue.models import FailedTask, PausedQueue, Task, WorkerRecord, uuid7
from tests import framework_tasks
from tests.factories import FailedTaskFactory, TaskFactory
from tests.processes import ROOT, django_env

pytestmark = pytest.mark.django_db

TASKS = reverse("admin:django_taskqueue_task_changelist")
FAILED = reverse("admin:django_taskqueue_failedtask_changelist")
TASK_TABLE = Task._meta.db_table
ADD = f"{framework_tasks.__name__}.add"


@pytest.fixture
def limit(monkeypatch):
    """Set the count limit of both lists."""

    def set_limit(value):
        for model in (Task, FailedTask):
            monkeypatch.setattr(admin.site._registry[model], "count_limit", value)

    return set_limit


@pytest.fixture
def no_estimates(monkeypatch):
    """A database without the planner's estimates, whatever the database is."""
    monkeypatch.setattr(type(queue_db()), "estimated_count", lambda self, queryset: None)


def on_task_table(sql):
    quoted = connection.ops.quote_name(TASK_TABLE)
    return quoted in sql or f"{TASK_TABLE}." in sql


def where_part(sql):
    return sql.split(" WHERE ", 1)[1] if " WHERE " in sql else ""


# Counts ---------------------------------------------------------------------------------


def test_a_list_past_the_limit_says_more_than(admin_client, limit, no_estimates):
    limit(3)
    TaskFactory.create_batch(5)
    response = admin_client.get(TASKS)
    paginator = response.context["cl"].paginator
    assert paginator.capped and not paginator.estimated
    assert paginator.count_label == "more than 3"
    assert ">more than 3</span> tasks" in response.content.decode()
    # Within the limit, a count is exact and unmarked.
    limit(5)
    response = admin_client.get(TASKS)
    assert response.context["cl"].paginator.count_label is None
    assert response.context["cl"].result_count == 5


def test_a_filtered_list_past_the_limit_is_marked_too(admin_client, limit, no_estimates):
    limit(2)
    TaskFactory.create_batch(3, name="tests.a")
    TaskFactory(name="tests.b")
    content = admin_client.get(TASKS, {"name": "tests.a"}).content.decode()
    assert ">more than 2</span> tasks" in content
    content = admin_client.get(TASKS, {"name": "tests.b"}).content.decode()
    assert "more than" not in content


def test_counting_reads_at_most_the_limit_and_one(admin_client, limit, no_estimates):
    limit(3)
    TaskFactory.create_batch(5)
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(TASKS)
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and on_task_table(q["sql"])]
    assert counts
    for sql in counts:
        assert "LIMIT" in sql.upper(), sql


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the planner's estimates")
def test_past_the_limit_postgresql_shows_its_estimate(admin_client, limit):
    limit(3)
    TaskFactory.create_batch(5, name="tests.a")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TASK_TABLE}")
    response = admin_client.get(TASKS, {"name": "tests.a"})
    paginator = response.context["cl"].paginator
    assert paginator.estimated
    assert paginator.count_label.startswith("about ")
    assert f">{paginator.count_label}</span> tasks" in response.content.decode()


def test_an_estimate_of_millions_reads_in_words(monkeypatch, admin_client):
    TaskFactory.create_batch(2)
    monkeypatch.setattr(admin.site._registry[Task], "estimate_above", 0)
    monkeypatch.setattr(type(queue_db()), "estimated_count", lambda self, qs: 1_234_567)
    response = admin_client.get(TASKS)
    assert response.context["cl"].paginator.count_label == "about 1.2 million"
    assert ">about 1.2 million</span> tasks" in response.content.decode()


def test_the_state_counts_stop_at_the_limit(admin_client, limit):
    limit(2)
    TaskFactory.create_batch(4)
    TaskFactory(running=True)
    states = admin_client.get(TASKS).context["taskqueue_states"]
    ready, _scheduled, running, _stale = states["states"]
    assert (ready["count"], ready["capped"]) == ("2", True)
    assert (running["count"], running["capped"]) == ("1", False)
    assert states["capped"]
    limit(100)
    response = admin_client.get(TASKS)
    states = response.context["taskqueue_states"]
    assert not states["capped"]
    assert [s["count"] for s in states["states"]] == ["4", "0", "1", "0"]
    assert "stopped at" not in response.content.decode()


def test_a_page_past_a_capped_count_is_empty_not_an_error(admin_client, limit, no_estimates):
    limit(100)
    TaskFactory.create_batch(120)
    limit(101)
    assert admin_client.get(TASKS, {"p": "2"}).status_code == 200
    limit(100)
    response = admin_client.get(TASKS, {"p": "5"})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


# Pages in the order of the index -----------------------------------------------------------


def test_pages_list_claimed_tasks_first_then_the_claim_order(admin_client, limit):
    now = timezone.now()
    TaskFactory.create_batch(3, running=True)
    TaskFactory.create_batch(2, stale=True)
    for i in range(200):
        TaskFactory(priority=i % 3, start_at=now - timedelta(seconds=i))
    expected = list(
        Task.objects.order_by(
            models.F("locked_until").asc(nulls_last=True), "priority", "start_at", "pk"
        ).values_list("pk", flat=True)
    )
    seen = []
    for page in (1, 2, 3):
        cl = admin_client.get(TASKS, {"p": str(page)}).context["cl"]
        seen += [task.pk for task in cl.result_list]
    assert seen == expected


@pytest.mark.parametrize("claimed", [0, 150])
def test_a_page_after_the_claimed_tasks(admin_client, claimed):
    TaskFactory.create_batch(claimed, running=True)
    TaskFactory.create_batch(120)
    expected = list(
        Task.objects.order_by(
            models.F("locked_until").asc(nulls_last=True), "priority", "start_at", "pk"
        ).values_list("pk", flat=True)
    )
    cl = admin_client.get(TASKS, {"p": "2"}).context["cl"]
    assert [task.pk for task in cl.result_list] == expected[100:200]


# Filter choices ------------------------------------------------------------------------------


def choices(filter_class, model=Task):
    request = RequestFactory().get("/")
    model_admin = admin.site._registry[model]
    return filter_class(request, {}, model, model_admin).lookup_choices


def test_name_choices_are_the_registered_names_and_framework_paths():
    TaskFactory(name="tests.not-registered")
    with CaptureQueriesContext(connection) as queries:
        names = [value for value, _ in choices(NameFilter)]
    assert not queries.captured_queries
    assert "tests.record" in names
    assert ADD in names
    assert FRAMEWORK_TASK not in names
    assert "tests.not-registered" not in names


def test_queue_choices_come_from_settings_workers_and_paused_queues():
    TaskFactory(queue="only-in-the-table")
    now = timezone.now()
    WorkerRecord.objects.create(
        id=uuid7(),
        hostname="h",
        pid=1,
        queues=["from-a-worker"],
        threads=1,
        version="1",
        started_at=now,
        last_seen=now,
        expires_at=now,
    )
    PausedQueue.objects.create(queue="paused-one")
    with CaptureQueriesContext(connection) as queries:
        queues = [value for value, _ in choices(QueueFilter, FailedTask)]
    assert queries.captured_queries
    assert not [q["sql"] for q in queries if on_task_table(q["sql"])]
    # tests/settings.py: TASKS["default"]["QUEUES"].
    assert {"default", "emails", "reports", "from-a-worker", "paused-one"} <= set(queues)
    assert "only-in-the-table" not in queues


@pytest.mark.parametrize("url", [TASKS, FAILED])
def test_no_list_reads_distinct_values(admin_client, url):
    TaskFactory.create_batch(2)
    FailedTaskFactory.create_batch(2)
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get(url).status_code == 200
    # Nor does the failures' date drill-down: it probes each period through the index.
    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper()]


def test_a_framework_task_is_filtered_by_its_path(admin_client):
    wanted = TaskFactory(name=FRAMEWORK_TASK, arguments={"path": "shop.tasks.notify"})
    TaskFactory(name=FRAMEWORK_TASK, arguments={"path": "shop.tasks.other"})
    TaskFactory(name="tests.record")
    response = admin_client.get(TASKS, {"name": "shop.tasks.notify"})
    assert list(response.context["cl"].result_list) == [wanted]
    # A value no choice lists is offered as one, selected.
    assert "?name=shop.tasks.notify" in response.content.decode()


def test_priority_choices_around_the_default(admin_client):
    early = TaskFactory(priority=1)
    default = TaskFactory(priority=16)
    late = TaskFactory(priority=99)
    for value, expected in [("earlier", early), ("16", default), ("later", late)]:
        response = admin_client.get(TASKS, {"priority": value})
        assert list(response.context["cl"].result_list) == [expected]
    assert "Runs earlier (&lt; 16)" in response.content.decode()


def test_queue_filter(admin_client):
    mail = TaskFactory(queue="emails")
    TaskFactory(queue="default")
    response = admin_client.get(TASKS, {"queue": "emails"})
    assert list(response.context["cl"].result_list) == [mail]
    failed = FailedTaskFactory(queue="emails")
    FailedTaskFactory(queue="default")
    response = admin_client.get(FAILED, {"queue": "emails"})
    assert list(response.context["cl"].result_list) == [failed]


# Search -------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [TASKS, FAILED])
def test_search_leaves_the_errors_alone(admin_client, url):
    TaskFactory(error="OSError: DiskFull")
    FailedTaskFactory(error="OSError: DiskFull")
    error = connection.ops.quote_name("error")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url, {"q": "DiskFull"})
    assert list(response.context["cl"].result_list) == []
    assert not [q["sql"] for q in queries if error in where_part(q["sql"])]
    # ... unless asked to.
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(url, {"q": "error: DiskFull"})
    assert len(response.context["cl"].result_list) == 1
    assert [q["sql"] for q in queries if error in where_part(q["sql"])]


def test_search_by_id_is_an_exact_lookup(admin_client):
    wanted = TaskFactory(name="tests.a")
    TaskFactory(name=str(wanted.pk))  # a name containing the id is not looked up
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(TASKS, {"q": str(wanted.pk)})
    assert list(response.context["cl"].result_list) == [wanted]
    searched = [q["sql"] for q in queries if on_task_table(q["sql"]) and "LIKE" in q["sql"]]
    assert not searched


def test_search_by_signature_and_name(admin_client, consumers):
    consumers.register(lambda args: None, ("shop.resize_image",))
    signed = TaskFactory(name="tests.a", signature="invoice-42")
    named = TaskFactory(name="shop.resize_image")
    framework = TaskFactory(name=FRAMEWORK_TASK, arguments={"path": ADD})
    TaskFactory(name="tests.other", signature="invoice-420")
    assert list(admin_client.get(TASKS, {"q": "invoice-42"}).context["cl"].result_list) == [signed]
    assert list(admin_client.get(TASKS, {"q": "RESIZE"}).context["cl"].result_list) == [named]
    assert list(admin_client.get(TASKS, {"q": "tasks.ad"}).context["cl"].result_list) == [framework]


def test_a_search_no_name_contains_reads_no_name(admin_client):
    TaskFactory(name="tests.unregistered-name")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(TASKS, {"q": "unregistered"})
    # Names come from the registry: the text is not looked for in every row.
    assert list(response.context["cl"].result_list) == []
    assert not [q["sql"] for q in queries if on_task_table(q["sql"]) and "LIKE" in q["sql"]]
    # The name filter still reaches any name.
    response = admin_client.get(TASKS, {"name": "tests.unregistered-name"})
    assert len(response.context["cl"].result_list) == 1


# Facet counts ("Show counts") ---------------------------------------------------------------


def facet_titles(response, title):
    for spec in response.context["cl"].filter_specs:
        if str(spec.title) == title:
            return [c["display"] for c in spec.choices(response.context["cl"])][1:]
    raise AssertionError(title)


def test_facets_are_exact_within_the_limit(admin_client, limit):
    limit(100)
    TaskFactory.create_batch(3, queue="emails")
    TaskFactory(queue="default", running=True)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(TASKS, {"_facets": "True"})
    assert "Ready (3)" in facet_titles(response, "state")
    assert "Running (1)" in facet_titles(response, "state")
    assert "emails (3)" in facet_titles(response, "queue")
    # Not Django's "pk IN (the choice's rows)" per choice, over the whole table.
    assert not [q["sql"] for q in queries if " IN (SELECT" in q["sql"].upper()]


def test_facets_past_the_limit_are_marked(admin_client, limit, no_estimates):
    limit(2)
    TaskFactory.create_batch(5, queue="emails")
    response = admin_client.get(TASKS, {"_facets": "True"})
    ready = next(t for t in facet_titles(response, "state") if t.startswith("Ready"))
    emails = next(t for t in facet_titles(response, "queue") if t.startswith("emails"))
    assert ready.endswith("+)")
    assert emails.endswith("+)")
    assert "Ready (5)" not in response.content.decode()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the planner's estimates")
def test_facets_past_the_limit_are_estimates_on_postgresql(admin_client, limit):
    limit(2)
    TaskFactory.create_batch(5, queue="emails")
    response = admin_client.get(TASKS, {"_facets": "True"})
    ready = next(t for t in facet_titles(response, "state") if t.startswith("Ready"))
    assert ready.startswith("Ready (about ")


# The failure log's date drill-down ------------------------------------------------------------


def test_the_date_drill_down_works_past_the_limit(admin_client, limit, no_estimates):
    limit(2)
    now = timezone.now()
    FailedTaskFactory.create_batch(4, failed_at=now)
    local = timezone.localtime(now)
    response = admin_client.get(
        FAILED,
        {
            "failed_at__year": str(local.year),
            "failed_at__month": str(local.month),
            "failed_at__day": str(local.day),
        },
    )
    assert response.status_code == 200
    assert response.context["cl"].paginator.count_label == "more than 2"
    assert len(response.context["cl"].result_list) == 4


@pytest.mark.parametrize("level", ["months", "days"])
def test_the_date_drill_down_lists_the_periods_with_failures(admin_client, level):
    march = timezone.make_aware(timezone.datetime(2026, 3, 5, 12))
    FailedTaskFactory(failed_at=march)
    FailedTaskFactory(failed_at=march + timedelta(days=2))
    FailedTaskFactory(failed_at=march + timedelta(days=31))  # April 5th
    params = {"failed_at__year": "2026"}
    if level == "days":
        params["failed_at__month"] = "3"
    with CaptureQueriesContext(connection) as queries:
        content = admin_client.get(FAILED, params).content.decode()
    if level == "months":
        links = ["failed_at__month=3&amp;failed_at__year=2026", "failed_at__month=4&amp;"]
        assert "failed_at__month=5&amp;" not in content
    else:
        links = ["failed_at__day=5&amp;", "failed_at__day=7&amp;"]
        assert "failed_at__day=6&amp;" not in content
    for link in links:
        assert link in content
    assert not [q["sql"] for q in queries if "DISTINCT" in q["sql"].upper()]


# models.W037 ---------------------------------------------------------------------------------


def test_the_ready_index_has_its_condition_where_the_database_supports_one():
    index = next(i for i in Task._meta.indexes if i.name == "taskqueue_task_ready_idx")
    # Not entered: building the statement needs no transaction.
    sql = str(index.create_sql(Task, connection.schema_editor(collect_sql=True)))
    assert ("WHERE" in sql) is connection.features.supports_partial_indexes
    assert index.deconstruct()[0] == "django.db.models.Index"
    assert index.deconstruct()[2]["condition"] == models.Q(locked_until__isnull=True)


def test_check_on_this_database_says_nothing_of_the_queue(capsys):
    call_command("check", databases=["default"])
    out = capsys.readouterr()
    assert "W037" not in out.out + out.err
    assert "django_taskqueue" not in out.out + out.err


def test_check_on_mariadb_says_nothing_of_the_queue():
    env = django_env(DATABASE_URL="mysql://root@127.0.0.1:3306/test")
    env.pop("TASKQUEUE_TEST_DATABASE_NAME")
    env.pop("TASKQUEUE_TEST_OTHER_DATABASE_NAME")
    proc = subprocess.run(
        [sys.executable, "-m", "django", "check", "--database", "default"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "W037" not in output
    assert "django_taskqueue" not in output
