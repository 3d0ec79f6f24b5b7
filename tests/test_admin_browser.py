"""The admin end to end in a real headless Chromium (Debian's ``chromium`` package).

Outside CI, the test is skipped when Playwright or Chromium is missing; in CI (``CI`` is
set) that is a failure, so the test cannot quietly stop running there.
"""

import os
import shutil
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from django_taskqueue import enqueue, enqueue_many
from django_taskqueue.admin.chart import nice_ceiling
from django_taskqueue.models import FailedTask, Task, WorkerRecord
from tests.factories import FailedTaskFactory
from tests.models import Run
from tests.processes import wait_for, worker

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def missing(what: str) -> None:
    message = f"{what} is needed for the browser test (see .ci/run)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def chromium_page():
    """A page in headless Chromium.

    Playwright's sync API runs an asyncio loop in this thread while it is open, and
    Django refuses ORM calls while a loop runs: tests touch the database only before
    and after this block.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright (pip install playwright)")
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        missing("Chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


def test_retry_a_failed_task_and_find_it_in_the_queue(live_server):
    user = User.objects.create_user("operator", password="retry-them-all", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="django_taskqueue",
            codename__in=["view_task", "add_task", "view_failedtask", "delete_failedtask"],
        )
    )
    FailedTaskFactory(name="tests.noop")
    failed = FailedTaskFactory(name="tests.record", arguments={"order": 42})

    with chromium_page() as page:
        from playwright.sync_api import expect

        page.goto(live_server.url + reverse("admin:login"))
        page.fill("#id_username", "operator")
        page.fill("#id_password", "retry-them-all")
        page.click("input[type=submit]")
        expect(page.locator("#user-tools")).to_contain_text("operator")

        page.get_by_role("link", name="Failed tasks").first.click()
        expect(page.locator("#result_list tbody tr")).to_have_count(2)
        page.locator(f"input.action-select[value='{failed.pk}']").check()
        page.select_option("select[name=action]", "retry")
        page.click("button[name=index]")
        expect(page.locator("ul.messagelist")).to_have_text("1 failed task is back on the queue.")
        expect(page.locator("#result_list tbody tr")).to_have_count(1)

        page.locator("#nav-sidebar").get_by_role("link", name="Tasks", exact=True).click()
        row = page.locator("#result_list tbody tr", has_text="tests.record")
        expect(row).to_have_count(1)
        expect(row.locator(".taskqueue-state")).to_have_text("Ready")
        row.get_by_role("link", name="tests.record").click()
        expect(page.locator("#content")).to_contain_text(str(failed.task_id))
        expect(page.locator(".taskqueue-pre").first).to_contain_text('"order": 42')

    task = Task.objects.get()
    assert (task.pk, task.retry_count) == (failed.task_id, 0)
    assert list(FailedTask.objects.values_list("name", flat=True)) == ["tests.noop"]


def test_the_task_list_charts_what_a_real_worker_did(live_server, tmp_path):
    User.objects.create_superuser("admin", password="chart-it")
    enqueue_many([("tests.record", {"n": n}) for n in range(5)])
    enqueue("tests.failure")
    # Due, but in a queue this worker does not run: still due when the chart is drawn.
    enqueue_many([("tests.noop", {"n": n}) for n in range(2)], queue="reports")
    log = tmp_path / "worker.log"
    proc = worker(log, "--burst", "--workers", "2", "--queue", "default")
    assert proc.wait(120) == 0, log.read_text()
    assert Run.objects.count() == 5
    assert FailedTask.objects.filter(name="tests.failure").count() == 1
    # A clean stop keeps the record, out of the workers' list, for the chart.
    record = WorkerRecord.objects.get()
    assert record.stopped_at is not None
    assert (record.succeeded, record.failed) == (5, 1)
    minutes = sorted((int(m), values) for m, values in record.history.items())
    assert sum(values[0] for _, values in minutes) == 5
    scale = nice_ceiling(max(values[0] + values[1] for _, values in minutes))
    expected_heights = [values[0] / scale * 150 for _, values in minutes if values[0]]

    with chromium_page() as page:
        from playwright.sync_api import expect

        page.goto(live_server.url + reverse("admin:login"))
        page.fill("#id_username", "admin")
        page.fill("#id_password", "chart-it")
        page.click("input[type=submit]")
        page.goto(live_server.url + reverse("admin:django_taskqueue_task_changelist"))
        chart = page.locator("section.taskqueue-chart")
        expect(chart.locator(".taskqueue-chart-summary")).to_have_text(
            "5 done, 1 failed in the last hour; 2 due now"
        )
        svg = chart.locator("svg.taskqueue-chart-svg")
        expect(svg).to_be_visible()
        expect(svg.locator("title#taskqueue-chart-title")).to_have_text(
            "Tasks per minute over the last hour"
        )
        bars = svg.locator("rect.taskqueue-chart-done")
        expect(bars).to_have_count(len(expected_heights))
        counts = [int(bar.get_attribute("data-count")) for bar in bars.all()]
        heights = [float(bar.get_attribute("height")) for bar in bars.all()]
        failed = svg.locator("rect.taskqueue-chart-failed")
        expect(failed).to_have_count(1)
        expect(failed).to_have_attribute("data-count", "1")
        expect(failed).to_have_attribute("height", f"{150 / scale:.1f}")
        # Drawn, not only present: the bars take up room on the page.
        box = bars.first.bounding_box()
        assert box is not None and box["height"] > 0

    assert sum(counts) == 5
    assert heights == pytest.approx(expected_heights, abs=0.05)


def test_a_queue_paused_in_the_admin_waits_for_its_resume(live_server, tmp_path):
    User.objects.create_superuser("admin", password="pause-it")

    def log_in(page):
        page.goto(live_server.url + reverse("admin:login"))
        page.fill("#id_username", "admin")
        page.fill("#id_password", "pause-it")
        page.click("input[type=submit]")

    with chromium_page() as page:
        from playwright.sync_api import expect

        log_in(page)
        page.get_by_role("link", name="Paused queues").first.click()
        page.get_by_role("link", name="Add paused queue").click()
        page.fill("#id_queue", "exports")
        page.fill("#id_reason", "partner API down")
        page.click("input[name=_save]")
        expect(page.locator("ul.messagelist")).to_have_text(
            "Paused queue “exports”: no worker claims its tasks until it is resumed."
        )
        page.goto(live_server.url + reverse("admin:django_taskqueue_task_changelist"))
        expect(page.locator(".taskqueue-paused")).to_contain_text("exports")
        expect(page.locator(".taskqueue-paused")).to_contain_text("partner API down")

    enqueue_many([("tests.record", {"n": n}) for n in range(3)], queue="exports")
    enqueue("tests.record", {"n": "other"})
    proc = worker(tmp_path / "worker.log", "--workers", "2")
    try:
        wait_for(lambda: Run.objects.filter(arguments__n="other").exists(), 60, 0.1, "a run")
        # A few of the worker's polls (POLL_INTERVAL is 0.2 s in the tests) after it ran
        # the other queue's task: the paused queue's tasks are still waiting.
        time.sleep(10 * settings.TASKQUEUE["POLL_INTERVAL"])
        assert Run.objects.count() == 1
        assert Task.objects.filter(queue="exports").count() == 3

        with chromium_page() as page:
            from playwright.sync_api import expect

            log_in(page)
            page.goto(live_server.url + reverse("admin:django_taskqueue_pausedqueue_changelist"))
            row = page.locator("#result_list tbody tr", has_text="exports")
            expect(row).to_contain_text("partner API down")
            row.locator("input.action-select").check()
            page.select_option("select[name=action]", "resume")
            page.click("button[name=index]")
            expect(page.locator("ul.messagelist")).to_have_text(
                "Resumed queue exports: workers claim its tasks again."
            )
            page.goto(live_server.url + reverse("admin:django_taskqueue_task_changelist"))
            expect(page.locator(".taskqueue-paused")).to_have_count(0)

        wait_for(lambda: Run.objects.count() == 4, 60, 0.1, "the paused queue's tasks")
        assert not Task.objects.exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    assert code == 0, (tmp_path / "worker.log").read_text()
    assert LogEntry.objects.filter(object_repr="exports").count() == 2
