"""The workers' admin, the running task's link to its worker, and the throughput chart."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_taskqueue.admin.chart import drawing, nice_ceiling, series, summary
from django_taskqueue.models import WorkerRecord, uuid7
from tests.factories import TaskFactory

WORKERS = reverse("admin:django_taskqueue_workerrecord_changelist")
TASKS = reverse("admin:django_taskqueue_task_changelist")
NOW = datetime(2026, 12, 3, 18, 30, 20, tzinfo=UTC)
MINUTE = int(NOW.timestamp()) // 60 * 60  # 18:30:00, the window's last minute
FIRST = MINUTE - 59 * 60  # 17:31:00, its first


def worker_url(record, view="change"):
    return reverse(f"admin:django_taskqueue_workerrecord_{view}", args=[record.pk])


def make_worker(*, dead=False, stopped=False, history=None, **fields):
    now = timezone.now()
    values = {
        "id": uuid7(),
        "hostname": "web-1",
        "pid": 4242,
        "threads": 4,
        "version": "1.2.3",
        "started_at": now - timedelta(hours=2),
        "last_seen": now - timedelta(minutes=10 if dead else 0, seconds=5),
        "expires_at": now + (timedelta(minutes=-9) if dead else timedelta(seconds=40)),
        "stopped_at": now if stopped else None,
        "history": history or {},
        **fields,
    }
    return WorkerRecord.objects.create(**values)


def record(history):
    return WorkerRecord(history=history)


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


# The series: pure arithmetic over hand-made histories ----------------------------------


def test_two_workers_in_the_same_minute_add_up_and_share_the_depth():
    data = series(
        [
            record({str(MINUTE): [3, 1, 10], str(MINUTE - 60): [7, 0, 12]}),
            record({str(MINUTE): [2, 0, 14]}),
        ],
        NOW,
    )
    assert len(data.minutes) == 60
    last, before = data.minutes[-1], data.minutes[-2]
    assert last.start == datetime(2026, 12, 3, 18, 30, tzinfo=UTC)
    assert (last.succeeded, last.failed, last.depth) == (5, 1, 14)
    assert (before.succeeded, before.failed, before.depth) == (7, 0, 12)
    assert (data.succeeded, data.failed, data.reported) == (12, 1, True)


def test_a_minute_nobody_wrote_has_no_depth_but_a_sampled_zero_is_zero():
    data = series([record({str(FIRST): [0, 0, 0], str(FIRST + 120): [4, 0, 9]})], NOW)
    depths = [m.depth for m in data.minutes[:4]]
    assert depths == [0, None, 9, None]
    assert [m.succeeded for m in data.minutes[:4]] == [0, 0, 4, 0]
    assert data.minutes[0].start == datetime(2026, 12, 3, 17, 31, tzinfo=UTC)


def test_minutes_outside_the_hour_are_left_out():
    old = {str(FIRST - 60): [50, 5, 100], str(MINUTE + 60): [40, 4, 80]}
    data = series([record(old)], NOW)
    assert (data.succeeded, data.failed, data.reported) == (0, 0, False)
    assert all(m.depth is None for m in data.minutes)
    data = series([record({**old, str(FIRST): [1, 2, 3]})], NOW)
    assert (data.succeeded, data.failed, data.reported) == (1, 2, True)
    assert data.minutes[0].depth == 3


def test_malformed_entries_are_skipped():
    history = {
        "soon": [9, 9, 9],
        str(MINUTE - 120): "nine",
        str(MINUTE - 60): [4],
        str(MINUTE): [True, -3, None],
    }
    data = series([record(history), record(None), record([1, 2])], NOW)
    assert [(m.succeeded, m.failed, m.depth) for m in data.minutes[-3:]] == [
        (0, 0, None),
        (4, 0, None),
        (0, 0, None),
    ]


def test_nice_ceiling():
    assert [nice_ceiling(n) for n in (0, 1, 3, 7, 10, 11, 250, 1001)] == [
        1,
        1,
        5,
        10,
        10,
        20,
        500,
        2000,
    ]


def test_summary_names_the_figures():
    data = series([record({str(MINUTE): [1200, 5, 3], str(MINUTE - 60): [34, 0, 1]})], NOW)
    assert summary(data, 250) == "1,234 done, 5 failed in the last hour; 250 due now"
    assert summary(data, 250, estimated=True).endswith("; ≈\u202f250 due now")
    assert summary(data, None) == "1,234 done, 5 failed in the last hour"


def test_drawing_scales_bars_and_breaks_the_depth_line_at_gaps():
    history = {
        str(FIRST): [6, 2, 40],  # slot 0: 8 a minute, the peak: scale 10
        str(FIRST + 60): [5, 0, 100],
        str(FIRST + 180): [0, 0, 50],  # after a gap, alone: a dot
    }
    chart = drawing(series([record(history)], NOW), due_now=7)
    first, second = chart["minutes"][0], chart["minutes"][1]
    # The plot is 150 units high (10 to 160) and 632 wide (44 to 676): 60 slots.
    assert (first["done_height"], first["done_y"]) == ("90.0", "70.0")
    assert (first["failed_height"], first["failed_y"]) == ("30.0", "40.0")
    assert (second["done_height"], second["failed_height"]) == ("75.0", "0.0")
    assert [m["succeeded"] for m in chart["minutes"]].count(0) == 58
    # Depth scale 100: 40 at y 100, 100 at the top; slot centres at 44 + 10.53 * (i + .5).
    assert chart["depth_path"] == "M49.3,100.0 L59.8,10.0"
    assert chart["depth_dots"] == [{"x": "80.9", "y": "85.0"}]
    assert [label["label"] for label in chart["count_labels"]] == ["0", "5", "10"]
    assert [label["label"] for label in chart["depth_labels"]] == ["0", "50", "100"]
    assert chart["summary"] == "11 done, 2 failed in the last hour; 7 due now"
    assert "up to 10 a minute" in chart["description"]


def test_time_labels_are_in_the_admins_time_zone():
    data = series([record({str(MINUTE): [1, 0, 0]})], NOW)
    assert [t["label"] for t in drawing(data)["ticks"]] == ["17:45", "18:00", "18:15", "18:30"]
    with timezone.override("Asia/Kolkata"):  # UTC+05:30
        ticks = drawing(data)["ticks"]
    assert [t["label"] for t in ticks] == ["23:15", "23:30", "23:45", "00:00"]
    # 23:15 there is 17:45 UTC, the 15th minute of the window.
    assert ticks[0]["x"] == f"{44 + 14 * 632 / 60:.1f}"


# The workers' list and pages ------------------------------------------------------------


@pytest.fixture
def staff_client(client, db):
    def login(*codenames):
        name = f"operator{User.objects.count()}"
        user = User.objects.create_user(name, password="secret", is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(
                content_type__app_label="django_taskqueue", codename__in=codenames
            )
        )
        client.force_login(user)
        return client

    return login


@pytest.mark.django_db
def test_worker_list_shows_live_and_dead_workers_but_not_stopped_ones(admin_client):
    alive = make_worker(hostname="web-1", queues=[], succeeded=1234, failed=5, running=3)
    dead = make_worker(hostname="web-2", dead=True, queues=["emails", "reports"], timed_out=2)
    make_worker(hostname="web-3", stopped=True)
    response = admin_client.get(WORKERS)
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [alive, dead]
    table = response.content.decode().split('<table id="result_list">')[1]
    rows = re.findall(r"<tr>.*?</tr>", table.split("<tbody>")[1], re.S)
    assert len(rows) == 2
    assert ">all<" in rows[0] and 'taskqueue-state-ready">alive<' in rows[0]
    assert '"field-succeeded">1234<' in rows[0] and '"field-running">3<' in rows[0]
    assert re.search(r">(5|6|7) seconds ago</time>", rows[0])
    assert ">emails, reports<" in rows[1] and 'taskqueue-state-stale"' in rows[1]
    assert '"field-timed_out">2<' in rows[1]


@pytest.mark.django_db
def test_status_filter(admin_client):
    alive = make_worker()
    dead = make_worker(dead=True)
    result = admin_client.get(WORKERS, {"status": "alive"}).context["cl"].result_list
    assert list(result) == [alive]
    result = admin_client.get(WORKERS, {"status": "dead"}).context["cl"].result_list
    assert list(result) == [dead]


@pytest.mark.django_db
def test_worker_page_lists_the_tasks_it_holds_and_cannot_be_edited(admin_client):
    worker = make_worker()
    held = [TaskFactory(name=f"tests.held{n}", running=True, lock_id=worker.pk) for n in (1, 2)]
    other = TaskFactory(name="tests.other", running=True)
    response = admin_client.get(worker_url(worker))
    assert response.status_code == 200
    content = response.content.decode()
    for task in held:
        url = reverse("admin:django_taskqueue_task_change", args=[task.pk])
        assert f'<a href="{url}">{task.name}</a>' in content
    assert other.name not in content
    assert 'name="_save"' not in content
    assert admin_client.post(worker_url(worker), {"hostname": "x"}).status_code == 403
    assert WorkerRecord.objects.get(pk=worker.pk).hostname == "web-1"


@pytest.mark.django_db
def test_no_adding_and_only_dead_workers_are_deleted(admin_client):
    alive = make_worker()
    dead = make_worker(dead=True)
    assert admin_client.get(reverse("admin:django_taskqueue_workerrecord_add")).status_code == 403
    assert admin_client.get(worker_url(alive, "delete")).status_code == 403
    assert admin_client.post(worker_url(dead, "delete"), {"post": "yes"}).status_code == 302
    assert list(WorkerRecord.objects.all()) == [alive]


@pytest.mark.django_db
def test_delete_dead_action_leaves_live_workers_alone(admin_client):
    alive, dead, dead_too = make_worker(), make_worker(dead=True), make_worker(dead=True)
    response = admin_client.get(WORKERS)
    actions = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert actions == ["", "delete_dead"]
    data = {"action": "delete_dead", "index": 0, ACTION_CHECKBOX_NAME: [alive.pk, dead.pk]}
    response = admin_client.post(WORKERS, data)
    assert messages_of(response) == [
        "Deleted 1 dead worker.",
        "1 worker was left alone: it is alive.",
    ]
    assert set(WorkerRecord.objects.all()) == {alive, dead_too}


@pytest.mark.django_db
def test_permissions(staff_client):
    worker = make_worker(dead=True)
    client = staff_client("view_workerrecord")
    assert client.get(WORKERS).status_code == 200
    assert client.get(worker_url(worker)).status_code == 200
    assert client.get(worker_url(worker, "delete")).status_code == 403
    assert client.get(TASKS).status_code == 403
    client.logout()
    client = staff_client("view_task")
    assert client.get(WORKERS).status_code == 403


# The running task's worker -------------------------------------------------------------


@pytest.mark.django_db
def test_running_task_links_to_its_worker_in_the_list_and_on_its_page(admin_client):
    worker = make_worker(hostname="web-7", pid=77)
    held = TaskFactory(name="tests.held", running=True, lock_id=worker.pk)
    orphan = TaskFactory(name="tests.orphan", stale=True)
    TaskFactory(name="tests.ready")
    link = f'<a href="{worker_url(worker)}" title="{worker.pk}">web-7:77</a>'
    content = admin_client.get(TASKS).content.decode()
    assert content.count(link) == 1
    assert f'<span class="taskqueue-lock-id">{orphan.lock_id}</span>' in content
    assert content.count('<td class="field-worker">-</td>') == 1
    page = reverse("admin:django_taskqueue_task_change", args=[held.pk])
    content = admin_client.get(page).content.decode()
    assert f'{link} <span class="quiet">{worker.pk}</span>' in content
    page = reverse("admin:django_taskqueue_task_change", args=[orphan.pk])
    assert f'<span class="taskqueue-lock-id">{orphan.lock_id}</span>' in (
        admin_client.get(page).content.decode()
    )


@pytest.mark.django_db
def test_a_stopped_workers_record_is_not_linked(admin_client):
    worker = make_worker(stopped=True)
    TaskFactory(running=True, lock_id=worker.pk)
    content = admin_client.get(TASKS).content.decode()
    assert worker_url(worker) not in content
    assert f'<span class="taskqueue-lock-id">{worker.pk}</span>' in content


# The chart on the task list -------------------------------------------------------------


@pytest.mark.django_db
def test_task_list_draws_the_chart_from_every_record_with_one_query(admin_client):
    minute = int(timezone.now().timestamp()) // 60 * 60
    live = make_worker(history={str(minute): [30, 2, 7], str(minute - 60): [10, 0, 4]})
    make_worker(stopped=True, history={str(minute): [20, 1, 5], str(minute - 7200): [99, 9, 9]})
    for _ in range(3):
        TaskFactory(running=True, lock_id=live.pk)
    TaskFactory(name="tests.due")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(TASKS)
    table = WorkerRecord._meta.db_table
    assert sum(table in query["sql"] for query in queries.captured_queries) == 1
    chart = response.context["taskqueue_chart"]
    assert chart["summary"] == "60 done, 3 failed in the last hour; 1 due now"
    content = response.content.decode()
    assert '<p class="taskqueue-chart-summary">60 done, 3 failed in the last hour; 1 due now' in (
        content
    )
    done = re.findall(
        r'class="taskqueue-chart-done" data-count="(\d+)"[^>]* height="([\d.]+)"', content
    )
    # 50 and 10 a minute, failures on top: scale 100 over 150 units.
    assert done == [("10", "15.0"), ("50", "75.0")]
    failed = re.findall(r'class="taskqueue-chart-failed" data-count="(\d+)"', content)
    assert failed == ["3"]
    assert 'role="img"' in content and '<title id="taskqueue-chart-title">' in content


@pytest.mark.django_db
def test_without_history_the_task_list_says_so_instead_of_drawing(admin_client):
    make_worker(history={str(int(timezone.now().timestamp()) - 7300): [5, 0, 0]})
    response = admin_client.get(TASKS)
    assert response.context["taskqueue_chart"] is None
    content = response.content.decode()
    assert "No worker has reported in the last hour" in content
    assert '<svg class="taskqueue-chart-svg"' not in content
