"""The admin through Django's test client: lists, filters, actions and permissions."""

import json
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_taskqueue import admin as taskqueue_admin
from django_taskqueue.db import queue_db
from django_taskqueue.db.generic import state_conditions
from django_taskqueue.models import FailedTask, Task, TaskState, uuid7
from django_taskqueue.worker import Worker
from tests.factories import FailedTaskFactory, TaskFactory
from tests.models import Run

pytestmark = pytest.mark.django_db

TASKS = reverse("admin:django_taskqueue_task_changelist")
FAILED = reverse("admin:django_taskqueue_failedtask_changelist")


def task_url(task, view="change"):
    return reverse(f"admin:django_taskqueue_task_{view}", args=[task.pk])


def failed_url(failed, view="change"):
    return reverse(f"admin:django_taskqueue_failedtask_{view}", args=[failed.pk])


def act(client, url, action, rows, **extra):
    data = {"action": action, "index": 0, ACTION_CHECKBOX_NAME: [str(r.pk) for r in rows]}
    return client.post(url, {**data, **extra})


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def action_names(response):
    form = response.context["action_form"]
    return [] if form is None else [name for name, _ in form.fields["action"].choices if name]


@pytest.fixture
def staff_client(client):
    """A client logged in as a staff user with only the given permissions."""

    def login(*codenames):
        user = User.objects.create_user("operator", password="secret", is_staff=True)
        permissions = Permission.objects.filter(
            content_type__app_label="django_taskqueue", codename__in=codenames
        )
        assert permissions.count() == len(codenames)
        user.user_permissions.set(permissions)
        client.force_login(user)
        return client

    return login


@pytest.fixture
def one_of_each():
    return {
        TaskState.READY: TaskFactory(name="tests.ready"),
        TaskState.SCHEDULED: TaskFactory(name="tests.scheduled", scheduled=True),
        TaskState.RUNNING: TaskFactory(name="tests.running", running=True),
        TaskState.STALE: TaskFactory(name="tests.stale", stale=True),
    }


def test_model_admins_pass_the_admin_checks():
    for model in (Task, FailedTask):
        assert admin.site._registry[model].check() == []


# The task list ------------------------------------------------------------------------


def test_task_list_shows_state_and_short_error(admin_client, one_of_each):
    one_of_each[TaskState.READY].error = "Traceback (most recent call last):\nKeyError: 'width'"
    one_of_each[TaskState.READY].save()
    response = admin_client.get(TASKS)
    assert response.status_code == 200
    content = response.content.decode()
    for state in TaskState:
        assert f'taskqueue-state-{state.value}">{state.label}</span>' in content
    assert "KeyError: &#x27;width&#x27;" in content
    assert "Traceback (most recent" not in content


def test_task_list_puts_claimed_tasks_first_then_claim_order(admin_client):
    now = timezone.now()
    late = TaskFactory(priority=16, start_at=now - timedelta(minutes=1))
    early = TaskFactory(priority=16, start_at=now - timedelta(minutes=5))
    urgent = TaskFactory(priority=0, start_at=now)
    running = TaskFactory(running=True, priority=99)
    response = admin_client.get(TASKS)
    assert list(response.context["cl"].result_list) == [running, urgent, early, late]


@pytest.mark.parametrize("state", list(TaskState))
def test_state_filter(admin_client, one_of_each, state):
    response = admin_client.get(TASKS, {"state": state.value})
    assert list(response.context["cl"].result_list) == [one_of_each[state]]


def test_name_and_priority_filters(admin_client):
    TaskFactory(name="tests.a", priority=1)
    b = TaskFactory(name="tests.b", priority=2)
    assert list(admin_client.get(TASKS, {"name": "tests.b"}).context["cl"].result_list) == [b]
    assert list(admin_client.get(TASKS, {"priority": "2"}).context["cl"].result_list) == [b]


@pytest.mark.parametrize(
    "term",
    ["noop", "invoice-42", "error:DiskFull", "{id}"],
    ids=["name", "sig", "err", "id"],
)
def test_task_search(admin_client, term):
    wanted = TaskFactory(name="tests.noop", signature="invoice-42", error="OSError: DiskFull")
    TaskFactory(name="tests.other")
    response = admin_client.get(TASKS, {"q": term.format(id=wanted.pk)})
    assert list(response.context["cl"].result_list) == [wanted]


def test_state_counts_above_the_list(admin_client, one_of_each):
    TaskFactory.create_batch(2)
    response = admin_client.get(TASKS, {"state": "ready"})
    counts = response.context["taskqueue_states"]
    assert counts["total"] == "6"
    assert not counts["estimated"]
    assert [(s["count"], s["active"]) for s in counts["states"]] == [
        ("3", True),  # ready
        ("1", False),  # scheduled
        ("1", False),  # running
        ("1", False),  # stale
    ]
    assert '<a href="?state=running"' in response.content.decode()


def test_state_counts_agree_with_in_state():
    now = timezone.now()
    TaskFactory(start_at=now)
    TaskFactory(start_at=now + timedelta(microseconds=1))
    TaskFactory(locked_until=now, lock_id=uuid7())
    TaskFactory(locked_until=now - timedelta(microseconds=1), lock_id=uuid7())
    TaskFactory(scheduled=True, running=True)
    conditions = state_conditions(now)
    for state in TaskState:
        assert (
            Task.objects.filter(conditions[state]).count()
            == Task.objects.in_state(state, now).count()
        )
    assert sum(Task.objects.filter(c).count() for c in conditions.values()) == 5


def test_big_tables_are_counted_from_estimates_on_postgresql(admin_client, monkeypatch):
    TaskFactory.create_batch(3)
    # Any table counts as big: the estimates path is taken whatever the planner guesses.
    monkeypatch.setattr(admin.site._registry[Task], "estimate_above", -1)
    response = admin_client.get(TASKS)
    estimated = connection.vendor == "postgresql"
    assert response.context["cl"].paginator.estimated is estimated
    states = response.context["taskqueue_states"]
    assert states["estimated"] is estimated
    # Ready and scheduled are estimated; the few claimed tasks are always counted.
    assert [s["estimated"] for s in states["states"]] == [estimated, estimated, False, False]
    assert [s["count"] for s in states["states"]][2:] == ["0", "0"]
    assert ("estimates from PostgreSQL" in response.content.decode()) is estimated
    if not estimated:
        assert response.context["cl"].result_count == 3
    # A filtered list is always counted exactly.
    filtered = admin_client.get(TASKS, {"state": "ready"})
    assert filtered.context["cl"].paginator.estimated is False
    assert filtered.context["cl"].result_count == 3


def test_estimated_count_reads_the_plan():
    TaskFactory.create_batch(2)
    estimate = taskqueue_admin.estimated_count(Task.objects.all())
    if connection.vendor == "postgresql":
        assert isinstance(estimate, int)
        assert estimate >= 0
    else:
        assert estimate is None


def make_tasks(n):
    traits = [{"scheduled": True}, {"running": True}, {"stale": True}, {"error": "x\nValueError"}]
    return [TaskFactory(**traits[i % len(traits)]) for i in range(n)]


def make_failed(n):
    return FailedTaskFactory.create_batch(n)


@pytest.mark.parametrize(("url", "make"), [(TASKS, make_tasks), (FAILED, make_failed)])
def test_changelist_queries_do_not_grow_with_rows(admin_client, url, make):
    make(1)
    with CaptureQueriesContext(connection) as one:
        assert admin_client.get(url).status_code == 200
    make(99)
    with CaptureQueriesContext(connection) as hundred:
        response = admin_client.get(url)
    assert len(response.context["cl"].result_list) == 100
    assert len(one) == len(hundred), [q["sql"] for q in hundred]


# Detail pages ---------------------------------------------------------------------------


def test_task_page_is_read_only_with_readable_arguments(admin_client):
    task = TaskFactory(arguments={"image": 7, "sizes": [1, 2]}, error="x\nValueError: <b>")
    response = admin_client.get(task_url(task))
    content = response.content.decode()
    assert response.status_code == 200
    expected = json.dumps({"image": 7, "sizes": [1, 2]}, indent=2).replace('"', "&quot;")
    assert f'<pre class="taskqueue-pre">{expected}</pre>' in content
    assert "ValueError: &lt;b&gt;</pre>" in content
    assert 'name="_save"' not in content
    assert admin_client.post(task_url(task), {"priority": 1}).status_code == 403
    task.refresh_from_db()
    assert task.priority == 16


def test_failed_task_page_shows_the_full_traceback(admin_client):
    error = 'Traceback (most recent call last):\n  File "a.py", line 1\nValueError: <boom>'
    failed = FailedTaskFactory(error=error)
    content = admin_client.get(failed_url(failed)).content.decode()
    assert (
        '<pre class="taskqueue-pre">Traceback (most recent call last):\n'
        "  File &quot;a.py&quot;, line 1\nValueError: &lt;boom&gt;</pre>"
    ) in content
    assert 'name="_save"' not in content


def test_there_is_no_add_page(admin_client):
    for name in ("task", "failedtask"):
        assert admin_client.get(reverse(f"admin:django_taskqueue_{name}_add")).status_code == 403


def test_a_running_task_cannot_be_deleted_from_its_page(admin_client, one_of_each):
    running = one_of_each[TaskState.RUNNING]
    assert admin_client.get(task_url(running, "delete")).status_code == 403
    ready = one_of_each[TaskState.READY]
    assert admin_client.post(task_url(ready, "delete"), {"post": "yes"}).status_code == 302
    assert not Task.objects.filter(pk=ready.pk).exists()


# Run now ---------------------------------------------------------------------------------


def test_run_now_moves_scheduled_tasks_only(admin_client, one_of_each):
    before = {state: Task.objects.get(pk=t.pk).start_at for state, t in one_of_each.items()}
    response = act(admin_client, TASKS, "run_now", one_of_each.values())
    assert response.status_code == 302
    after = {state: Task.objects.get(pk=t.pk).start_at for state, t in one_of_each.items()}
    assert after[TaskState.SCHEDULED] <= timezone.now()
    assert Task.objects.get(pk=one_of_each[TaskState.SCHEDULED].pk).state() == TaskState.READY
    for state in (TaskState.READY, TaskState.RUNNING, TaskState.STALE):
        assert after[state] == before[state]
    assert messages_of(response) == [
        "1 scheduled task will run as soon as a worker is free.",
        "3 tasks were left alone: only scheduled tasks can be moved, and they are already "
        "due or running.",
    ]


# Cancel ----------------------------------------------------------------------------------


def test_cancel_asks_first_then_deletes_all_but_running(admin_client, one_of_each):
    response = act(admin_client, TASKS, "cancel", one_of_each.values())
    assert response.status_code == 200
    assert "admin/django_taskqueue/task/cancel_confirmation.html" in [
        t.name for t in response.templates
    ]
    content = response.content.decode()
    assert "These 3 tasks will be removed from the queue" in content
    assert "1 selected task is running now and will be left alone" in content
    assert Task.objects.count() == 4

    response = act(admin_client, TASKS, "cancel", one_of_each.values(), post="yes")
    assert response.status_code == 302
    assert list(Task.objects.all()) == [one_of_each[TaskState.RUNNING]]
    assert messages_of(response) == [
        "Cancelled 3 tasks.",
        "1 running task was not cancelled: a worker is running it now. "
        "Cancel it once its run ends.",
    ]


def test_cancel_confirmation_posts_back_the_selection(admin_client, one_of_each):
    ready = one_of_each[TaskState.READY]
    response = act(admin_client, TASKS, "cancel", [ready])
    content = response.content.decode()
    assert f'name="{ACTION_CHECKBOX_NAME}" value="{ready.pk}"' in content
    assert 'name="action" value="cancel"' in content
    assert 'name="post" value="yes"' in content
    # What the confirmation form sends: no "index", like Django's delete confirmation.
    response = admin_client.post(
        TASKS, {ACTION_CHECKBOX_NAME: [ready.pk], "action": "cancel", "post": "yes"}
    )
    assert messages_of(response) == ["Cancelled 1 task."]
    assert Task.objects.count() == 3


def test_cancel_of_running_tasks_only_says_why(admin_client, one_of_each):
    response = act(admin_client, TASKS, "cancel", [one_of_each[TaskState.RUNNING]])
    assert response.status_code == 302
    assert Task.objects.count() == 4
    assert messages_of(response) == [
        "1 running task was not cancelled: a worker is running it now. Cancel it once its run ends."
    ]


def test_cancel_across_every_page_of_a_filter(admin_client, one_of_each):
    scheduled = TaskFactory.create_batch(3, scheduled=True)
    url = f"{TASKS}?state=scheduled"
    response = act(admin_client, url, "cancel", scheduled[:1], select_across=1)
    assert 'name="select_across" value="1"' in response.content.decode()
    assert "These 4 tasks will be removed" in response.content.decode()
    admin_client.post(
        url,
        {
            ACTION_CHECKBOX_NAME: [scheduled[0].pk],
            "action": "cancel",
            "select_across": 1,
            "post": "yes",
        },
    )
    assert not Task.objects.scheduled().exists()
    assert Task.objects.count() == 3


def test_tasks_have_no_plain_delete_action(admin_client, one_of_each):
    response = admin_client.get(TASKS)
    assert action_names(response) == ["run_now", "cancel", "pause_queues", "resume_queues"]


# Retry -----------------------------------------------------------------------------------


def test_retry_puts_the_task_back_and_removes_the_failure(admin_client):
    created = timezone.now() - timedelta(days=1)
    failed = FailedTaskFactory(
        name="tests.record",
        arguments={"n": 1},
        priority=3,
        signature="sig-1",
        queue="mail",
        retry_max=4,
        retry_count=5,
        created_at=created,
        start_at=created,
        lock_id=uuid7(),
        locked_until=created,
    )
    before = timezone.now()
    response = act(admin_client, FAILED, "retry", [failed])
    assert response.status_code == 302
    assert messages_of(response) == ["1 failed task is back on the queue."]
    assert not FailedTask.objects.exists()
    task = Task.objects.get()
    assert task.pk == failed.task_id
    assert (task.name, task.arguments, task.priority, task.signature, task.queue) == (
        "tests.record",
        {"n": 1},
        3,
        "sig-1",
        "mail",
    )
    assert (task.retry_count, task.retry_max, task.created_at) == (0, 4, created)
    assert before <= task.start_at <= timezone.now()
    assert (task.lock_id, task.locked_until) == (None, None)
    assert task.error == failed.error
    assert list(Task.objects.ready()) == [task]


def test_retry_skips_a_signature_already_queued(admin_client):
    TaskFactory(signature="report-7")
    clash = FailedTaskFactory(signature="report-7")
    free = FailedTaskFactory(signature=None)
    response = act(admin_client, FAILED, "retry", [clash, free])
    assert messages_of(response) == [
        "1 failed task is back on the queue.",
        "1 failed task was skipped: a task with the same signature is already queued. "
        "It stays in the failure log.",
    ]
    assert list(FailedTask.objects.all()) == [clash]
    assert Task.objects.filter(pk=free.task_id).exists()
    assert Task.objects.count() == 2


def test_retry_of_two_failures_with_one_signature_keeps_the_older(admin_client):
    now = timezone.now()
    older = FailedTaskFactory(signature="sync", failed_at=now - timedelta(hours=1))
    newer = FailedTaskFactory(signature="sync", failed_at=now)
    response = act(admin_client, FAILED, "retry", [older, newer])
    assert Task.objects.get().pk == newer.task_id
    assert list(FailedTask.objects.all()) == [older]
    assert len(messages_of(response)) == 2


def test_retry_skips_a_task_id_already_queued(admin_client):
    queued = TaskFactory(signature=None)
    again = FailedTaskFactory(task_id=queued.pk, signature=None)
    signed = FailedTaskFactory(task_id=queued.pk, signature="other")
    response = act(admin_client, FAILED, "retry", [again, signed])
    assert response.status_code == 302
    assert messages_of(response) == [
        "2 failed tasks were skipped: the same tasks are already queued (retried before, "
        "or selected twice). They stay in the failure log."
    ]
    assert FailedTask.objects.count() == 2
    assert list(Task.objects.all()) == [queued]


def test_retry_of_a_task_that_failed_twice_retries_the_newest(admin_client):
    now = timezone.now()
    task_id = uuid7()
    first = FailedTaskFactory(task_id=task_id, failed_at=now - timedelta(days=1), priority=1)
    second = FailedTaskFactory(task_id=task_id, failed_at=now, priority=2)
    response = act(admin_client, FAILED, "retry", [first, second])
    assert Task.objects.get(pk=task_id).priority == 2
    assert list(FailedTask.objects.all()) == [first]
    assert messages_of(response)[0] == "1 failed task is back on the queue."
    assert "selected twice" in messages_of(response)[1]


def test_retry_is_one_transaction(admin_client, monkeypatch):
    failed = FailedTaskFactory.create_batch(2)
    layer = type(queue_db())
    real = layer.insert

    def insert_then_fail(self, tasks):
        real(self, tasks)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(layer, "insert", insert_then_fail)
    with pytest.raises(RuntimeError):
        act(admin_client, FAILED, "retry", failed)
    assert not Task.objects.exists()
    assert FailedTask.objects.count() == 2


def test_retry_racing_another_retry_says_so(admin_client, monkeypatch):
    failed = FailedTaskFactory()

    def conflict(self, tasks):
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(type(queue_db()), "insert", conflict)
    response = act(admin_client, FAILED, "retry", [failed])
    assert messages_of(response) == [
        "Nothing was retried: the same tasks were being retried at the same time."
    ]
    assert FailedTask.objects.count() == 1


def test_retry_of_many_across_pages(admin_client):
    FailedTask.objects.bulk_create(FailedTaskFactory.build_batch(1200))
    one = FailedTask.objects.first()
    response = act(admin_client, FAILED, "retry", [one], select_across=1)
    assert messages_of(response) == ["1200 failed tasks are back on the queue."]
    assert Task.objects.count() == 1200
    assert not FailedTask.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_retried_task_runs(admin_client):
    failed = FailedTaskFactory(name="tests.record", arguments={"again": True})
    act(admin_client, FAILED, "retry", [failed])
    worker = Worker(workers=1, burst=True, listen=False, grace=5)
    assert worker.run() == 0
    assert list(Run.objects.values_list("task_id", "arguments")) == [
        (failed.task_id, {"again": True})
    ]


def test_failed_task_list(admin_client):
    now = timezone.now()
    old = FailedTaskFactory(name="tests.old", failed_at=now - timedelta(days=400))
    new = FailedTaskFactory(name="tests.new", failed_at=now, error="x\nKeyError: 'k'")
    response = admin_client.get(FAILED)
    assert list(response.context["cl"].result_list) == [new, old]
    assert "KeyError: &#x27;k&#x27;" in response.content.decode()
    assert action_names(response) == ["retry", "delete_selected"]
    year = str(timezone.localtime(old.failed_at).year)
    response = admin_client.get(FAILED, {"failed_at__year": year})
    assert list(response.context["cl"].result_list) == [old]
    response = admin_client.get(FAILED, {"q": str(new.task_id)})
    assert list(response.context["cl"].result_list) == [new]


def test_failed_tasks_can_be_deleted(admin_client):
    failed = FailedTaskFactory.create_batch(2)
    act(admin_client, FAILED, "delete_selected", failed[:1], post="yes")
    assert list(FailedTask.objects.all()) == failed[1:]


# Permissions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codenames", "task_actions", "failed_actions"),
    [
        (["view_task", "view_failedtask"], [], []),
        (["view_task", "change_task"], ["run_now"], None),
        (["view_task", "delete_task"], ["cancel"], None),
        (["view_failedtask", "delete_failedtask"], None, ["delete_selected"]),
        (["view_failedtask", "add_task"], None, []),
        (["view_failedtask", "add_task", "delete_failedtask"], None, ["retry", "delete_selected"]),
    ],
)
def test_actions_need_their_permissions(staff_client, codenames, task_actions, failed_actions):
    client = staff_client(*codenames)
    for url, expected in ((TASKS, task_actions), (FAILED, failed_actions)):
        response = client.get(url)
        if expected is None:
            assert response.status_code == 403
        else:
            assert response.status_code == 200
            assert action_names(response) == expected


@pytest.mark.parametrize(
    ("url", "action", "make", "codenames"),
    [
        (TASKS, "run_now", lambda: TaskFactory(scheduled=True), ["view_task", "delete_task"]),
        (TASKS, "cancel", TaskFactory, ["view_task", "change_task"]),
        (FAILED, "retry", FailedTaskFactory, ["view_failedtask", "delete_failedtask"]),
        (FAILED, "delete_selected", FailedTaskFactory, ["view_failedtask"]),
    ],
)
def test_an_action_without_permission_changes_nothing(staff_client, url, action, make, codenames):
    row = make()
    response = act(staff_client(*codenames), url, action, [row], post="yes")
    # With other actions on offer the form refuses this one; with none it is ignored.
    assert messages_of(response) == (["No action selected."] if len(codenames) > 1 else [])
    fresh = type(row).objects.get(pk=row.pk)
    assert [getattr(fresh, f.attname) for f in fresh._meta.fields] == [
        getattr(row, f.attname) for f in row._meta.fields
    ]
    assert not (url == FAILED and Task.objects.exists())


def test_a_view_only_user_sees_no_delete_link(staff_client):
    task = TaskFactory()
    content = staff_client("view_task").get(task_url(task)).content.decode()
    assert "deletelink" not in content
    assert "closelink" in content


# The Retry button on a failed task's page ------------------------------------------------


def test_retry_button_puts_the_task_back_and_opens_it(admin_client):
    failed = FailedTaskFactory()
    page = admin_client.get(failed_url(failed)).content.decode()
    assert f'action="{failed_url(failed, "retry")}"' in page
    assert admin_client.get(failed_url(failed, "retry")).status_code == 405
    response = admin_client.post(failed_url(failed, "retry"))
    assert response.url == reverse("admin:django_taskqueue_task_change", args=[failed.task_id])
    assert messages_of(response) == ["1 failed task is back on the queue."]
    assert not FailedTask.objects.exists()
    assert Task.objects.filter(pk=failed.task_id).exists()


def test_retry_button_stays_on_the_page_when_skipped(admin_client):
    TaskFactory(signature="once")
    failed = FailedTaskFactory(signature="once")
    response = admin_client.post(failed_url(failed, "retry"))
    assert response.url == failed_url(failed)
    assert "same signature" in messages_of(response)[0]
    assert FailedTask.objects.filter(pk=failed.pk).exists()


def test_retry_button_needs_the_retry_permission(staff_client):
    failed = FailedTaskFactory()
    client = staff_client("view_failedtask", "delete_failedtask")
    assert "taskqueue-retry" not in client.get(failed_url(failed)).content.decode()
    assert client.post(failed_url(failed, "retry")).status_code == 403
    assert FailedTask.objects.filter(pk=failed.pk).exists()


def test_retry_button_for_a_failure_already_gone(admin_client):
    response = admin_client.post(reverse("admin:django_taskqueue_failedtask_retry", args=[999]))
    assert response.status_code == 302
    assert response.url == reverse("admin:django_taskqueue_failedtask_changelist")
    assert messages_of(response) == [
        "Failed task 999 is gone: it was retried or deleted meanwhile."
    ]
