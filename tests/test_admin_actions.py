"""The admin as its users expect it: every action in the admin's history, the queue and
arguments in the lists, the task page's buttons, start times to the second, the results
of Django's tasks framework, framework tasks under their function's path, and paused
queues."""

import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse
from django.utils import dateformat, timezone

from django_taskqueue.admin import history, queues
from django_taskqueue.admin.task_page import relative
from django_taskqueue.constants import FRAMEWORK_TASK
from django_taskqueue.models import (
    FailedTask,
    PausedQueue,
    ResultStatus,
    Task,
    TaskResultRecord,
    WorkerRecord,
    uuid7,
)
from django_taskqueue.pausing import pause_queue, paused_queues
from tests.factories import FailedTaskFactory, TaskFactory
from tests.framework_tasks import add
from tests.test_admin import FAILED, TASKS, act, action_names, failed_url, messages_of, task_url
from tests.test_admin_workers import make_worker

pytestmark = pytest.mark.django_db

PAUSED = reverse("admin:django_taskqueue_pausedqueue_changelist")
RESULTS = reverse("admin:django_taskqueue_taskresultrecord_changelist")
PATH = "tests.framework_tasks.add"


def login(client, *codenames):
    """Log ``client`` in as a staff user with only these permissions."""
    user = User.objects.create_user("operator", password="secret", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_taskqueue", codename__in=codenames
        )
    )
    client.force_login(user)


def entries(model=Task, **filters):
    content_type = ContentType.objects.get_for_model(model)
    return list(
        LogEntry.objects.filter(content_type=content_type, **filters)
        .order_by("pk")
        .values_list("object_id", "object_repr", "action_flag", "change_message")
    )


def cell(content, field):
    """The text of every list cell of ``field``."""
    return re.findall(rf'<t[dh] class="field-{field}"[^>]*>(.*?)</t[dh]>', content, re.S)


@pytest.fixture
def framework_task():
    """A task enqueued through Django's tasks framework: named by the queue's consumer."""
    result = add.enqueue(2, 3)
    task = Task.objects.get(pk=result.id)
    assert task.name == FRAMEWORK_TASK
    assert task.arguments["path"] == PATH
    return task


def test_the_new_admins_pass_the_admin_checks():
    for model in (PausedQueue, TaskResultRecord):
        assert admin.site._registry[model].check() == []


# The admin's history --------------------------------------------------------------------


def test_run_now_writes_one_entry_per_task_it_moved(admin_client):
    scheduled = TaskFactory(name="tests.later", scheduled=True)
    ready = TaskFactory()
    act(admin_client, TASKS, "run_now", [scheduled, ready])
    assert entries() == [
        (str(scheduled.pk), f"tests.later ({scheduled.pk})", CHANGE, "Run now: due at once.")
    ]
    history_page = admin_client.get(task_url(scheduled, "history")).content.decode()
    assert "Run now: due at once." in history_page


def test_cancel_writes_one_entry_per_task_it_removed(admin_client):
    ready = TaskFactory()
    running = TaskFactory(running=True)
    act(admin_client, TASKS, "cancel", [ready, running], post="yes")
    assert entries() == [(str(ready.pk), f"tests.record ({ready.pk})", DELETION, "Cancelled.")]
    # "Recent actions" on the admin's index.
    assert f"tests.record ({ready.pk})" in admin_client.get(reverse("admin:index")).content.decode()


def test_a_big_selection_writes_one_entry(admin_client, monkeypatch):
    monkeypatch.setattr(history, "LOG_EACH", 2)
    tasks = TaskFactory.create_batch(3, scheduled=True)
    act(admin_client, TASKS, "run_now", tasks)
    assert entries() == [(None, "3 tasks", CHANGE, "Run now: due at once.")]
    assert not Task.objects.scheduled().exists()


def test_retry_writes_the_task_it_queued(admin_client):
    failed = FailedTaskFactory(name="tests.noop")
    act(admin_client, FAILED, "retry", [failed])
    assert entries() == [
        (
            str(failed.task_id),
            f"tests.noop ({failed.task_id})",
            ADDITION,
            "Retried from the failure log.",
        )
    ]


def test_retry_button_writes_the_task_it_queued_and_skips_are_not_written(admin_client):
    queued = TaskFactory(signature="invoice-1")
    skipped = FailedTaskFactory(signature="invoice-1")
    admin_client.post(failed_url(skipped, "retry"))
    assert entries() == []
    queued.delete()
    admin_client.post(failed_url(skipped, "retry"))
    assert [entry[0] for entry in entries()] == [str(skipped.task_id)]


def test_deleting_failures_is_written(admin_client):
    failed = FailedTaskFactory()
    act(admin_client, FAILED, "delete_selected", [failed], post="yes")
    assert [entry[2] for entry in entries(FailedTask)] == [DELETION]


def test_deleting_dead_workers_is_written(admin_client):
    dead = make_worker(dead=True, hostname="web-9")
    alive = make_worker(hostname="web-1")
    url = reverse("admin:django_taskqueue_workerrecord_changelist")
    act(admin_client, url, "delete_dead", [dead, alive])
    assert entries(WorkerRecord) == [(str(dead.pk), str(dead), DELETION, "")]


# The lists: queue, arguments, search -------------------------------------------------------


def test_lists_show_the_queue_and_a_short_safe_preview_of_the_arguments(admin_client):
    TaskFactory(queue="exports", arguments={"note": "<b>x</b>"})
    FailedTaskFactory(queue="reports", arguments={"text": "y" * 500})
    tasks = admin_client.get(TASKS).content.decode()
    assert cell(tasks, "queue") == ["exports"]
    assert (
        '<code class="taskqueue-args" title="{&quot;note&quot;: &quot;&lt;b&gt;x&lt;/b&gt;&quot;}">'
        "{&quot;note&quot;: &quot;&lt;b&gt;x&lt;/b&gt;&quot;}</code>"
    ) in tasks
    failed = admin_client.get(FAILED).content.decode()
    assert cell(failed, "queue") == ["reports"]
    shown = re.search(r'<code class="taskqueue-args" title="[^"]*">([^<]*)</code>', failed)
    assert shown is not None
    assert shown.group(1) == "{&quot;text&quot;: &quot;" + "y" * 49 + "…"


@pytest.mark.parametrize(
    ("term", "found"),
    [
        ("args:order=42", ["number"]),
        ('args:order="42"', ["text"]),
        ("ARGS: customer=Ada", ["number"]),
        ("args:invoice-7", ["text"]),
        ("args:nothing=1", []),
        ("order", []),  # the default search leaves arguments alone
    ],
)
@pytest.mark.parametrize(("url", "factory"), [(TASKS, TaskFactory), (FAILED, FailedTaskFactory)])
def test_search_by_argument(admin_client, url, factory, term, found):
    rows = {
        "number": factory(arguments={"order": 42, "customer": "Ada"}),
        "text": factory(arguments={"order": "42", "ref": "invoice-7"}),
    }
    factory(arguments={"order": 43})
    response = admin_client.get(url, {"q": term})
    assert {row.pk for row in response.context["cl"].result_list} == {
        rows[name].pk for name in found
    }


# The task's page: Run now and Cancel -------------------------------------------------------


def test_task_page_has_run_now_and_cancel_instead_of_delete(admin_client):
    content = admin_client.get(task_url(TaskFactory(scheduled=True))).content.decode()
    assert 'class="taskqueue-button taskqueue-run-now">Run now</button>' in content
    assert 'class="taskqueue-cancel">Cancel</a>' in content
    assert "deletelink" not in content
    # A due task has nothing to run sooner.
    assert "taskqueue-run-now" not in admin_client.get(task_url(TaskFactory())).content.decode()


def test_run_now_button(admin_client):
    task = TaskFactory(scheduled=True)
    response = admin_client.post(task_url(task, "run_now"))
    assert response.status_code == 302 and response.url == task_url(task)
    assert messages_of(response) == ["“tests.record” will run as soon as a worker is free."]
    task.refresh_from_db()
    assert task.state() == "ready"
    assert entries() == [(str(task.pk), str(task), CHANGE, "Run now: due at once.")]
    response = admin_client.post(task_url(task, "run_now"))
    # The first message is still stored: the redirect was not followed.
    assert messages_of(response)[1:] == [
        "“tests.record” is due already: it runs when a worker is free."
    ]
    assert len(entries()) == 1


def test_cancel_button_asks_then_cancels(admin_client):
    task = TaskFactory()
    page = admin_client.get(task_url(task, "cancel")).content.decode()
    assert "“tests.record” will be removed from the queue and will not run." in page
    assert Task.objects.filter(pk=task.pk).exists()
    response = admin_client.post(task_url(task, "cancel"))
    assert response.status_code == 302 and response.url == TASKS
    assert messages_of(response) == ["Cancelled “tests.record”."]
    assert not Task.objects.filter(pk=task.pk).exists()
    assert entries() == [(str(task.pk), str(task), DELETION, "Cancelled.")]


def test_cancel_button_refuses_a_running_task(admin_client):
    task = TaskFactory(running=True)
    for response in (
        admin_client.get(task_url(task, "cancel")),
        admin_client.post(task_url(task, "cancel")),
    ):
        assert response.status_code == 302 and response.url == task_url(task)
        assert messages_of(response)[-1] == (
            "“tests.record” was not cancelled: a worker is running it now, and a run cannot be "
            "stopped from here. If it fails and waits for a retry, cancel it then."
        )
    assert Task.objects.filter(pk=task.pk).exists()
    assert entries() == []


def test_buttons_need_their_permissions(client):
    login(client, "view_task")
    task = TaskFactory(scheduled=True)
    content = client.get(task_url(task)).content.decode()
    assert "taskqueue-run-now" not in content and "taskqueue-cancel" not in content
    assert client.post(task_url(task, "run_now")).status_code == 403
    assert client.post(task_url(task, "cancel")).status_code == 403
    assert Task.objects.get(pk=task.pk).state() == "scheduled"


# Start times -------------------------------------------------------------------------------


def test_relative_start_times():
    now = timezone.now()
    assert relative(now + timedelta(seconds=50), now) == "in 50 s"
    assert relative(now + timedelta(seconds=0.2), now) == "in 1 s"
    assert relative(now, now) == "due now"
    assert relative(now - timedelta(seconds=50), now) == "due 50 s ago"
    assert relative(now - timedelta(minutes=3), now) == "due 3\xa0minutes ago"
    assert relative(now + timedelta(hours=3, minutes=5), now) == "in 3\xa0hours"


def test_the_list_tells_a_task_due_in_50_seconds_from_a_ready_one(admin_client):
    now = timezone.now()
    soon = TaskFactory(start_at=now + timedelta(seconds=50))
    TaskFactory(start_at=now - timedelta(minutes=3))
    starts = cell(admin_client.get(TASKS).content.decode(), "start")
    exact = dateformat.format(timezone.localtime(soon.start_at), "Y-m-d H:i:s")
    assert any(f">{exact}</time>" in start for start in starts)
    hints = sorted(re.search(r'taskqueue-relative">([^<]*)<', s).group(1) for s in starts)
    assert hints[0] == "due 3\xa0minutes ago"
    assert re.fullmatch(r"in (49|50) s", hints[1])


# Results of Django's tasks framework ------------------------------------------------------


@pytest.fixture
def results():
    now = timezone.now()
    done = TaskResultRecord.objects.create(
        id=uuid7(),
        task_path=PATH,
        backend="default",
        queue="emails",
        args=[2, 3],
        kwargs={"mode": "<fast>"},
        status=ResultStatus.SUCCESSFUL,
        return_value={"sum": [5]},
        enqueued_at=now - timedelta(minutes=2),
        started_at=now - timedelta(minutes=1),
        finished_at=now,
    )
    failed = TaskResultRecord.objects.create(
        id=uuid7(),
        task_path="tests.framework_tasks.fail",
        backend="default",
        args=["no"],
        status=ResultStatus.FAILED,
        errors=[
            {
                "exception_class_path": "builtins.ValueError",
                "traceback": "Traceback\nValueError: <no>",
            }
        ],
        enqueued_at=now - timedelta(minutes=3),
    )
    return done, failed


def test_results_list(admin_client, results):
    done, failed = results
    content = admin_client.get(RESULTS).content.decode()
    change = reverse("admin:django_taskqueue_taskresultrecord_change", args=[done.pk])
    assert cell(content, "task_path")[0] == f'<a href="{change}">{PATH}</a>'
    assert 'taskqueue-state-succeeded">Successful</span>' in content
    assert 'taskqueue-state-failed">Failed</span>' in content
    assert '<code class="taskqueue-args">2, 3, mode=&quot;&lt;fast&gt;&quot;</code>' in content
    assert cell(content, "queue") == ["emails", "default"]
    filtered = admin_client.get(RESULTS, {"status__exact": "FAILED"}).context["cl"].result_list
    assert list(filtered) == [failed]
    filtered = admin_client.get(RESULTS, {"queue__exact": "emails"}).context["cl"].result_list
    assert list(filtered) == [done]


def test_result_page_pretty_prints_return_value_and_errors(admin_client, results):
    done, failed = results
    url = reverse("admin:django_taskqueue_taskresultrecord_change", args=[done.pk])
    content = admin_client.get(url).content.decode()
    assert '<pre class="taskqueue-pre">{\n  &quot;sum&quot;: [\n    5\n  ]\n}</pre>' in content
    assert 'name="_save"' not in content
    url = reverse("admin:django_taskqueue_taskresultrecord_change", args=[failed.pk])
    content = admin_client.get(url).content.decode()
    assert "<code>builtins.ValueError</code>" in content
    assert '<pre class="taskqueue-pre">Traceback\nValueError: &lt;no&gt;</pre>' in content


def test_results_cannot_be_added_or_changed_but_can_be_deleted(admin_client, results):
    done, failed = results
    assert (
        admin_client.get(reverse("admin:django_taskqueue_taskresultrecord_add")).status_code == 403
    )
    url = reverse("admin:django_taskqueue_taskresultrecord_change", args=[done.pk])
    assert admin_client.post(url, {"queue": "other"}).status_code == 403
    act(admin_client, RESULTS, "delete_selected", [done], post="yes")
    assert list(TaskResultRecord.objects.all()) == [failed]
    assert [e[2] for e in entries(TaskResultRecord)] == [DELETION]


# Framework tasks under their function's path ------------------------------------------------


def test_framework_tasks_show_their_path(admin_client, framework_task):
    tasks = admin_client.get(TASKS).content.decode()
    assert PATH in cell(tasks, "task_name")[0]
    assert FRAMEWORK_TASK not in cell(tasks, "task_name")[0]
    FailedTask.from_task(framework_task, "x\nValueError: boom").save()
    failed = admin_client.get(FAILED).content.decode()
    assert PATH in cell(failed, "task_name")[0]
    assert FRAMEWORK_TASK not in cell(failed, "task_name")[0]
    page = admin_client.get(task_url(framework_task)).content.decode()
    assert f"&rsaquo; {PATH}\n</div>" in page
    assert f'<div class="readonly">{PATH}</div>' in page
    failure = FailedTask.objects.get()
    assert (
        f'<div class="readonly">{PATH}</div>'
        in admin_client.get(failed_url(failure)).content.decode()
    )


def test_framework_tasks_in_messages_and_history(admin_client, framework_task):
    confirmation = act(admin_client, TASKS, "cancel", [framework_task]).content.decode()
    assert f">{PATH}</a>" in confirmation
    Task.objects.filter(pk=framework_task.pk).update(start_at=timezone.now() + timedelta(hours=1))
    response = admin_client.post(task_url(framework_task, "run_now"))
    assert messages_of(response) == [f"“{PATH}” will run as soon as a worker is free."]
    Task.objects.filter(pk=framework_task.pk).update(
        lock_id=uuid7(), locked_until=timezone.now() + timedelta(minutes=5)
    )
    response = admin_client.post(task_url(framework_task, "cancel"))
    assert messages_of(response)[-1].startswith(f"“{PATH}” was not cancelled")
    assert entries() == [
        (str(framework_task.pk), f"{PATH} ({framework_task.pk})", CHANGE, "Run now: due at once.")
    ]


# Paused queues ------------------------------------------------------------------------------


@pytest.fixture
def spied(monkeypatch):
    """The calls the admin makes to pause_queue and resume_queue, which it must use (on
    PostgreSQL they notify the workers)."""
    calls = []
    for name in ("pause_queue", "resume_queue"):
        real = getattr(queues, name)

        def spy(queue, *args, _real=real, _name=name, **kwargs):
            calls.append((_name, queue))
            return _real(queue, *args, **kwargs)

        monkeypatch.setattr(queues, name, spy)
    return calls


def test_adding_a_paused_queue_pauses_it(admin_client, spied):
    url = reverse("admin:django_taskqueue_pausedqueue_add")
    response = admin_client.post(url, {"queue": "exports", "reason": "API down"})
    assert response.status_code == 302 and response.url == PAUSED
    assert messages_of(response) == [
        "Paused queue “exports”: no worker claims its tasks until it is resumed."
    ]
    assert spied == [("pause_queue", "exports")]
    [record] = paused_queues()
    assert (record.queue, record.reason) == ("exports", "API down")
    assert entries(PausedQueue) == [(str(record.pk), "exports", ADDITION, "Paused.")]
    again = admin_client.post(url, {"queue": "exports"})
    assert again.status_code == 200
    assert again.context["adminform"].form.errors == {"queue": ["This queue is paused already."]}
    nul = admin_client.post(url, {"queue": "a\x00b"})
    assert "queue" in nul.context["adminform"].form.errors
    assert len(paused_queues()) == 1


@pytest.mark.parametrize("how", ["action", "button", "delete"])
def test_resuming_a_paused_queue(admin_client, spied, how):
    pause_queue("exports")
    pause_queue("reports")
    record = PausedQueue.objects.get(queue="exports")
    if how == "action":
        response = act(admin_client, PAUSED, "resume", [record])
        expected = "Resumed queue exports: workers claim its tasks again."
    elif how == "button":
        response = admin_client.post(
            reverse("admin:django_taskqueue_pausedqueue_resume", args=[record.pk])
        )
        expected = "Resumed queue exports: workers claim its tasks again."
    else:
        url = reverse("admin:django_taskqueue_pausedqueue_delete", args=[record.pk])
        response = admin_client.post(url, {"post": "yes"})
        expected = "Resumed queue “exports”."
    assert messages_of(response) == [expected]
    assert spied == [("resume_queue", "exports")]
    assert [r.queue for r in paused_queues()] == ["reports"]
    assert entries(PausedQueue) == [(str(record.pk), "exports", DELETION, "Resumed.")]


def test_pause_and_resume_the_queues_of_selected_tasks(admin_client, spied):
    tasks = [
        TaskFactory(queue="exports"),
        TaskFactory(queue="reports"),
        TaskFactory(queue="exports"),
    ]
    pause_queue("reports")
    response = act(admin_client, TASKS, "pause_queues", tasks)
    assert messages_of(response) == [
        "Paused queue exports: no worker claims its tasks until it is resumed.",
        "Paused already: reports.",
    ]
    assert sorted(r.queue for r in paused_queues()) == ["exports", "reports"]
    assert [(e[1], e[2]) for e in entries(PausedQueue)] == [("exports", ADDITION)]
    response = act(admin_client, TASKS, "resume_queues", [*tasks[:2], TaskFactory()])
    assert messages_of(response)[2:] == [
        "Resumed queues exports, reports: workers claim their tasks again.",
        "Not paused: default.",
    ]
    assert paused_queues() == []
    assert [(e[1], e[2]) for e in entries(PausedQueue)][1:] == [
        ("exports", DELETION),
        ("reports", DELETION),
    ]
    assert ("pause_queue", "exports") in spied and ("resume_queue", "reports") in spied


@pytest.mark.parametrize(
    ("codenames", "expected"),
    [
        (["view_task", "change_task"], []),
        (["view_task", "add_pausedqueue"], ["pause_queues"]),
        (["view_task", "delete_pausedqueue"], ["resume_queues"]),
    ],
)
def test_pause_actions_need_the_paused_queue_permissions(client, codenames, expected):
    login(client, *codenames)
    TaskFactory()
    names = action_names(client.get(TASKS))
    assert [name for name in names if name.endswith("_queues")] == expected


def test_the_task_list_says_which_queues_are_paused(admin_client):
    TaskFactory()
    content = admin_client.get(TASKS).content.decode()
    assert 'class="taskqueue-paused"' not in content
    pause_queue("exports", reason="API down")
    PausedQueue.objects.update(paused_at=timezone.now() - timedelta(minutes=10))
    pause_queue("reports")
    content = admin_client.get(TASKS).content.decode()
    notice = re.search(r'<p class="taskqueue-paused" role="status">(.*?)</p>', content, re.S)
    assert notice is not None
    text = re.sub(r"\s+", " ", notice.group(1).replace("\xa0", " ")).strip()
    assert re.fullmatch(
        re.escape(
            f'<a href="{PAUSED}">Paused queues</a>: <strong>exports</strong> (since 10 minutes: '
            "API down), <strong>reports</strong> (since "
        )
        + r"[0-9] s\)\. No worker claims their tasks until they are resumed\.",
        text,
    )
