"""What the worker says at its default verbosity: a line per outcome, a summary when
there are too many, the next attempt of a retry; and nothing but errors at -v 0."""

import re

import pytest

from django_taskqueue import enqueue, enqueue_many
from django_taskqueue.worker import Worker
from django_taskqueue.worker.logs import LINES_PER_SECOND, humanize
from tests.processes import worker

pytestmark = pytest.mark.django_db(transaction=True)


def burst(**kwargs):
    Worker(burst=True, listen=False, workers=2, **kwargs).run()


def messages(caplog, level=None):
    return [r.getMessage() for r in caplog.records if level is None or r.levelname == level]


def test_each_success_is_a_line_at_info(caplog):
    caplog.set_level("INFO", logger="django_taskqueue")
    tasks = [enqueue("tests.noop") for _ in range(3)]
    burst()
    lines = [m for m in messages(caplog, "INFO") if "succeeded in" in m]
    assert sorted(lines) == sorted(next(m for m in lines if str(t.pk) in m) for t in tasks)
    assert all(re.fullmatch(r"task \S+ \(tests\.noop\) succeeded in \d+\.\d{3}s", m) for m in lines)
    assert "stopped after 3 tasks" in messages(caplog)[-1]


def test_above_the_rate_the_rest_are_counted_into_a_summary_line(caplog):
    caplog.set_level("INFO", logger="django_taskqueue")
    enqueue_many([("tests.noop", {}) for _ in range(200)])
    burst()
    lines = [m for m in messages(caplog) if "succeeded in" in m]
    summaries = [m for m in messages(caplog) if "too many for a line each" in m]
    assert summaries
    counted = sum(int(re.search(r"(\d+) succeeded\)", m).group(1)) for m in summaries)
    assert len(lines) + counted == 200
    # At most LINES_PER_SECOND lines in any one second of the run.
    seconds = {}
    for record in caplog.records:
        if "succeeded in" in record.getMessage():
            second = int(record.created)
            seconds[second] = seconds.get(second, 0) + 1
    assert max(seconds.values()) <= LINES_PER_SECOND + 1  # a second boundary may split


def test_a_retry_says_which_attempt_failed_and_when_the_next_runs(caplog):
    caplog.set_level("INFO", logger="django_taskqueue")
    enqueue("tests.raise", {"message": "flaky"}, retry_max=3)
    burst()
    [line] = [m for m in messages(caplog, "WARNING") if "raised after" in m]
    assert re.fullmatch(
        r"task \S+ \(tests\.raise\) raised after \d+\.\d{3}s \(attempt 1 of 4\): "
        r"ValueError: flaky; next attempt at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(in (59|60) s\)",
        line,
    ), line


def test_a_final_failure_says_one_attempt_not_one_attempts(caplog):
    caplog.set_level("INFO", logger="django_taskqueue")
    enqueue("tests.raise", {"message": "no"}, retry_max=0)
    burst()
    [line] = [m for m in messages(caplog, "ERROR") if "moved to the failure log" in m]
    assert "gave up after 1 attempt (retry_max=0)" in line


def test_humanize():
    assert [humanize(s) for s in (0.4, 59.6, 120, 5400, 7200, 90000, 3 * 86400)] == [
        "0 s",
        "60 s",
        "2 min",
        "2 h",
        "2 h",
        "25 h",
        "3 days",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(("verbosity", "says"), [("1", True), ("0", False)])
def test_the_command_logs_outcomes_at_its_default_verbosity_and_not_at_0(tmp_path, verbosity, says):
    enqueue("tests.noop")
    log = tmp_path / "worker.log"
    proc = worker(log, "--burst", "-v", verbosity)
    assert proc.wait(60) == 0
    text = log.read_text()
    assert ("(tests.noop) succeeded in" in text) is says, text
