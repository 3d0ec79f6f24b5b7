"""Periodic tasks: declaring schedules, their ticks (daylight saving time included),
catch-up after downtime, and each tick enqueued once by any number of workers."""

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.db import connections

from django_taskqueue.constants import FRAMEWORK_TASK
from django_taskqueue.db import queue_db
from django_taskqueue.models import ScheduleRecord, Task
from django_taskqueue.periodic_tasks import declared, from_settings, periodic
from django_taskqueue.schedules import MAX_TICKS_PER_PASS, Schedule, ScheduleError
from django_taskqueue.worker import Worker
from django_taskqueue.worker.scheduler import Scheduler
from tests import tasks as test_tasks

pytestmark = pytest.mark.django_db(transaction=True)

NEW_YORK = ZoneInfo("America/New_York")


def schedule(name="s", **options):
    options.setdefault("task", "tests.record")
    options.setdefault("tick_argument", "tick")
    return Schedule(name=name, **options)


def scheduler(*schedules):
    return Scheduler(queue_db("default"), {s.name: s for s in schedules})


def enqueued_ticks(name="tests.record"):
    return [
        datetime.fromisoformat(t.arguments["tick"])
        for t in Task.objects.filter(name=name).order_by("start_at", "created_at")
    ]


def step_through(runner, start, end, step):
    now = start
    while now <= end:
        runner.run_due(now)
        now += step


def utc(*args):
    return datetime(*args, tzinfo=UTC)


# Declaring --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cron": "61 * * * *"}, "is not a cron expression"),
        ({"cron": "@sometimes"}, "is not a cron expression"),
        ({"cron": "0 3 * * *", "every": timedelta(minutes=1)}, "not both"),
        ({}, "either a cron expression or every="),
        ({"every": timedelta(milliseconds=1500)}, "whole number of seconds >= 1"),
        ({"every": "5m"}, "must be a timedelta"),
        ({"cron": "@daily", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"cron": "@daily", "catch_up": "some"}, "catch_up must be one of latest, all, skip"),
        ({"cron": "@daily", "grace": timedelta(seconds=-1)}, "grace must be a timedelta >= 0"),
        ({"cron": "@daily", "arguments": [1]}, "arguments must be a dict"),
        ({"cron": "@daily", "priority": "high"}, "priority must be an integer"),
    ],
)
def test_a_wrong_schedule_is_refused_with_its_name_and_problem(options, message):
    with pytest.raises(ScheduleError, match=message) as caught:
        Schedule(name="nightly", task="tests.record", **options)
    assert "nightly" in str(caught.value)


def test_settings_entries_are_checked_key_by_key():
    with pytest.raises(ScheduleError, match=r"unknown key\(s\) 'cronn'"):
        from_settings("x", {"task": "tests.record", "cronn": "@daily"})
    with pytest.raises(ScheduleError, match="needs 'task'"):
        from_settings("x", {"cron": "@daily"})
    entry = from_settings("x", {"task": "tests.record", "every": 90, "grace": 30})
    assert entry.every == timedelta(seconds=90)
    assert entry.grace == timedelta(seconds=30)


def test_periodic_decorates_a_consumer_in_either_order(consumers, monkeypatch):
    from django_taskqueue import consumer
    from django_taskqueue.periodic_tasks import _declared

    monkeypatch.setattr("django_taskqueue.periodic_tasks._declared", dict(_declared))

    @periodic("0 3 * * *", arguments={"days": 30})
    @consumer("cleanup.above")
    def above(args):
        return None

    @consumer("cleanup.below")
    @periodic(every=timedelta(minutes=5), name="five-minutes")
    def below(args):
        return None

    schedules = declared()
    # Named after the function unless given a name.
    default_name = f"{above.__module__}.{above.__qualname__}"
    assert schedules[default_name].resolve() == ("consumer", "cleanup.above")
    assert schedules[default_name].arguments == {"days": 30}
    assert schedules["five-minutes"].resolve() == ("consumer", "cleanup.below")


def test_a_consumer_of_several_names_needs_task_named(consumers):
    from django_taskqueue import consumer

    @consumer("a.one", "a.two")
    def both(args):
        return None

    with pytest.raises(ScheduleError, match="say which with"):
        Schedule(name="x", task=both, cron="@daily").resolve()
    assert Schedule(name="x", task="a.two", cron="@daily").resolve() == ("consumer", "a.two")


def test_settings_replace_a_decorated_schedule_of_the_same_name(taskqueue_settings):
    taskqueue_settings["SCHEDULE"] = {"nightly": {"task": "tests.noop", "cron": "@hourly"}}
    assert declared()["nightly"].cron == "@hourly"


def test_an_unknown_task_is_named_in_the_error():
    with pytest.raises(ScheduleError, match=r"no consumer is registered for 'tests\.nope'"):
        Schedule(name="x", task="tests.nope", cron="@daily").resolve()


# Ticks --------------------------------------------------------------------------------


def test_interval_ticks_are_multiples_of_the_interval_since_the_epoch():
    every = Schedule(name="x", task="tests.noop", every=timedelta(minutes=5))
    ticks = every.ticks_after(utc(2026, 1, 1, 10, 2, 30))
    assert [next(ticks) for _ in range(2)] == [utc(2026, 1, 1, 10, 5), utc(2026, 1, 1, 10, 10)]
    assert every.latest_tick(utc(2026, 1, 1, 10, 5)) == utc(2026, 1, 1, 10, 5)


def test_a_daily_time_that_spring_forward_skips_runs_once_that_day():
    # 2026-03-08 in New York: 02:00 EST jumps to 03:00 EDT, so there is no 02:30.
    runner = scheduler(schedule(cron="30 2 * * *", timezone="America/New_York"))
    step_through(runner, utc(2026, 3, 7, 0), utc(2026, 3, 10, 0), timedelta(minutes=1))
    local_days = [tick.astimezone(NEW_YORK).date().isoformat() for tick in enqueued_ticks()]
    assert local_days == ["2026-03-07", "2026-03-08", "2026-03-09"]
    # Where cron puts it: at the jump, 03:00 EDT.
    assert enqueued_ticks()[1] == utc(2026, 3, 8, 7, 0)


def test_a_daily_time_that_fall_back_repeats_runs_once_that_day():
    # 2026-11-01 in New York: 01:30 happens at 05:30 and again at 06:30 UTC.
    runner = scheduler(schedule(cron="30 1 * * *", timezone="America/New_York"))
    step_through(runner, utc(2026, 10, 31, 0), utc(2026, 11, 3, 0), timedelta(minutes=1))
    assert enqueued_ticks() == [
        utc(2026, 10, 31, 5, 30),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 2, 6, 30),
    ]


def test_the_default_time_zone_is_settings_time_zone(settings):
    settings.TIME_ZONE = "Asia/Tokyo"
    nightly = Schedule(name="x", task="tests.noop", cron="0 3 * * *")
    assert nightly.next_tick(utc(2026, 1, 1, 0, 0)) == utc(2026, 1, 1, 18, 0)


# Catch-up -----------------------------------------------------------------------------


BACK_AT = datetime(2026, 1, 1, 13, 20, tzinfo=UTC)


def missed_hours(catch_up, grace=timedelta(hours=1), back_at=BACK_AT):
    """An hourly schedule whose workers were all down from 10:00:30 to ``back_at``."""
    hourly = schedule(cron="0 * * * *", timezone="UTC", catch_up=catch_up, grace=grace)
    scheduler(hourly).run_due(utc(2026, 1, 1, 10, 0, 30))
    scheduler(hourly).run_due(back_at)  # a worker started after the outage
    return enqueued_ticks()


def test_catch_up_latest_runs_the_latest_missed_tick_once():
    assert missed_hours("latest") == [utc(2026, 1, 1, 13)]


def test_catch_up_latest_skips_a_tick_later_than_its_grace():
    assert missed_hours("latest", grace=timedelta(minutes=15)) == []
    assert ScheduleRecord.objects.get().last_tick == utc(2026, 1, 1, 13)


def test_catch_up_all_runs_every_missed_tick_in_order():
    assert missed_hours("all", grace=None) == [utc(2026, 1, 1, h) for h in (11, 12, 13)]


def test_catch_up_all_keeps_to_its_grace():
    assert missed_hours("all", grace=timedelta(minutes=90)) == [
        utc(2026, 1, 1, h) for h in (12, 13)
    ]


def test_catch_up_all_fires_a_long_backlog_over_several_passes():
    every = schedule(every=timedelta(seconds=1), catch_up="all", grace=None)
    runner = scheduler(every)
    runner.run_due(utc(2026, 1, 1))
    assert runner.run_due(utc(2026, 1, 1, 0, 5)) == MAX_TICKS_PER_PASS
    assert runner.seconds_until_due(utc(2026, 1, 1, 0, 5)) == 0.0
    while runner.run_due(utc(2026, 1, 1, 0, 5)):
        pass
    assert len(enqueued_ticks()) == 300


def test_catch_up_skip_runs_no_missed_tick_but_the_next_on_time_one():
    assert missed_hours("skip") == []
    scheduler(schedule(cron="0 * * * *", timezone="UTC", catch_up="skip")).run_due(
        utc(2026, 1, 1, 14, 0, 20)
    )
    assert enqueued_ticks() == [utc(2026, 1, 1, 14)]


def test_a_new_schedule_does_not_run_the_ticks_before_it_existed():
    runner = scheduler(schedule(cron="0 * * * *", timezone="UTC", catch_up="all", grace=None))
    assert runner.run_due(utc(2026, 1, 1, 10, 30)) == 0
    assert runner.seconds_until_due(utc(2026, 1, 1, 10, 30)) == 30 * 60


# Exactly once -------------------------------------------------------------------------


def test_eight_threads_enqueue_each_tick_once():
    every = schedule(every=timedelta(seconds=1))
    start = utc(2026, 1, 1)
    errors = []

    def run():
        try:
            runner = scheduler(every)
            for second in range(40):
                runner.run_due(start + timedelta(seconds=second, milliseconds=300))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    ticks = enqueued_ticks()
    assert len(ticks) == len(set(ticks))
    # Each second once; the last few may be missing only if every thread was late.
    assert ticks == [start + timedelta(seconds=s) for s in range(1, len(ticks) + 1)]
    assert len(ticks) >= 35


def test_two_deployments_side_by_side_fire_each_tick_once():
    start = utc(2026, 1, 1)
    old = scheduler(
        schedule("shared", every=timedelta(seconds=10)),
        schedule("old-only", task="tests.noop", every=timedelta(seconds=10), tick_argument=None),
    )
    new = scheduler(
        schedule("shared", every=timedelta(seconds=5)),
        schedule("new-only", task="tests.noop", every=timedelta(seconds=10), tick_argument=None),
    )
    old.run_due(start)
    new.run_due(start)
    for second in range(1, 61):
        for runner in (old, new) if second % 2 else (new, old):
            runner.run_due(start + timedelta(seconds=second))
    ticks = enqueued_ticks()
    assert len(ticks) == len(set(ticks)) == 12  # every 5 s: the old ticks are among them
    assert Task.objects.filter(name="tests.noop").count() == 12  # 6 old-only + 6 new-only


def test_a_changed_schedule_takes_effect_when_workers_restart_and_a_removed_one_stops():
    scheduler(schedule(cron="0 3 * * *", timezone="UTC")).run_due(utc(2026, 1, 1, 2))
    # Redeployed at 03:30 with 04:00 instead: 03:00 of the old one is not caught up.
    restarted = scheduler(schedule(cron="0 4 * * *", timezone="UTC"))
    step_through(restarted, utc(2026, 1, 1, 3, 30), utc(2026, 1, 2, 5), timedelta(minutes=1))
    assert enqueued_ticks() == [utc(2026, 1, 1, 4), utc(2026, 1, 2, 4)]
    assert ScheduleRecord.objects.get().expression == "0 4 * * *"
    # Removed: no worker declares it, so nothing fires it.
    step_through(scheduler(), utc(2026, 1, 2, 5), utc(2026, 1, 4), timedelta(hours=1))
    assert len(enqueued_ticks()) == 2


def test_a_disabled_schedule_enqueues_nothing_until_enabled():
    runner = scheduler(schedule(every=timedelta(seconds=10)))
    runner.run_due(utc(2026, 1, 1))
    ScheduleRecord.objects.update(enabled=False)
    step_through(runner, utc(2026, 1, 1), utc(2026, 1, 1, 0, 1), timedelta(seconds=1))
    assert enqueued_ticks() == []
    ScheduleRecord.objects.update(enabled=True, last_tick=utc(2026, 1, 1, 0, 1))
    step_through(runner, utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 1, 30), timedelta(seconds=1))
    assert enqueued_ticks() == [utc(2026, 1, 1, 0, 1, s) for s in (10, 20, 30)]


def test_a_tick_that_cannot_be_enqueued_is_logged_and_skipped(caplog):
    caplog.set_level("WARNING", logger="django_taskqueue")
    runner = scheduler(Schedule(name="bad", task="tests.unknown", every=timedelta(seconds=10)))
    runner.run_due(utc(2026, 1, 1))
    assert runner.run_due(utc(2026, 1, 1, 0, 0, 10)) == 0
    assert "schedule 'bad': the tick of 2026-01-01T00:00:10+00:00 could not be" in caplog.text
    assert ScheduleRecord.objects.get().last_tick == utc(2026, 1, 1, 0, 0, 10)
    assert not Task.objects.exists()


def test_a_framework_task_is_scheduled_through_the_backend(taskqueue_settings):
    taskqueue_settings["SCHEDULE"] = {
        "add": {"task": "tests.framework_tasks.add", "every": 60, "args": [2, 3]}
    }
    runner = Scheduler(queue_db("default"), declared())
    runner.run_due(utc(2026, 1, 1))
    assert runner.run_due(utc(2026, 1, 1, 0, 1)) == 1
    task = Task.objects.get()
    assert task.name == FRAMEWORK_TASK
    assert task.arguments["args"] == [2, 3]
    assert ScheduleRecord.objects.get().last_task_id == task.pk


def test_a_worker_fires_its_schedules_and_runs_what_they_enqueue():
    # Ahead of the host's clock, which stamps what enqueue() stores: due at once.
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    clock = [start]
    every = schedule(every=timedelta(seconds=1), catch_up="all", grace=None)
    worker = Worker(
        burst=True, listen=False, clock=lambda: clock[0], schedules={"s": every}, workers=2
    )
    worker.run()  # registers the schedule at `start`
    clock[0] = start + timedelta(seconds=3)
    Worker(burst=True, listen=False, clock=lambda: clock[0], schedules={"s": every}).run()
    from tests.models import Run

    ticks = sorted(datetime.fromisoformat(r.arguments["tick"]) for r in Run.objects.all())
    assert ticks == [start + timedelta(seconds=s) for s in (1, 2, 3)]
    assert not Task.objects.exists()


def test_system_check_names_a_wrong_schedule(taskqueue_settings, capsys):
    taskqueue_settings["SCHEDULE"] = {"x": {"task": "tests.nope", "cron": "@daily"}}
    from django.core.management.base import SystemCheckError

    with pytest.raises(SystemCheckError, match=r"no consumer is registered for 'tests\.nope'"):
        call_command("check")


assert test_tasks  # the consumers the schedules name are registered


@pytest.mark.slow
def test_three_worker_processes_enqueue_and_run_each_one_second_tick_once(tmp_path):
    import json
    import signal

    from tests.models import Run
    from tests.processes import wait_for, worker

    every_second = {"task": "tests.record", "every": 1, "catch_up": "all", "grace": None}
    env = {"TASKQUEUE_TEST_SCHEDULE": json.dumps({"s": {**every_second, "tick_argument": "tick"}})}
    logs = [tmp_path / f"worker-{n}.log" for n in range(3)]
    procs = [worker(log, "--workers", "2", **env) for log in logs]
    try:
        wait_for(lambda: Run.objects.count() >= 12, timeout=90, message="twelve ticks run")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in procs]
    output = "\n".join(log.read_text() for log in logs)
    assert codes == [0, 0, 0], output
    ran = [datetime.fromisoformat(r.arguments["tick"]) for r in Run.objects.all()]
    queued = [datetime.fromisoformat(t.arguments["tick"]) for t in Task.objects.all()]
    ticks = sorted(ran + queued)
    assert len(ticks) == len(set(ticks)), output  # no tick twice
    first = ticks[0]
    assert ticks == [first + timedelta(seconds=s) for s in range(len(ticks))], output  # no gap
    assert ScheduleRecord.objects.get().last_tick == ticks[-1]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"task": "tests.record", "cron": "0 25 * * *"}, "is not a cron expression"),
        ({"task": "tests.record", "cron": "@daily", "timezone": "Europe/Nowhere"}, "unknown time"),
        ({"task": "tests.nope", "every": 60}, "no consumer is registered for 'tests.nope'"),
        ({"task": "tests.framework_tasks.add", "every": 60, "queue": 5}, "queue must be a string"),
    ],
)
def test_the_system_checks_report_each_wrong_schedule(taskqueue_settings, entry, message):
    from django.core.checks import run_checks

    taskqueue_settings["SCHEDULE"] = {"broken": entry}
    errors = [m for m in run_checks() if m.id == "django_taskqueue.E032"]
    assert len(errors) == 1
    assert message in errors[0].msg and "'broken'" in errors[0].msg


def test_periodic_decorates_a_framework_task(monkeypatch):
    from django_taskqueue.periodic_tasks import _declared

    monkeypatch.setattr("django_taskqueue.periodic_tasks._declared", dict(_declared))
    from tests import framework_tasks

    periodic(every=timedelta(minutes=1), args=(4, 5))(framework_tasks.add)
    [schedule] = [s for s in declared().values() if s.name == "tests.framework_tasks.add"]
    assert schedule.resolve() == ("framework", framework_tasks.add)
    runner = Scheduler(queue_db("default"), {schedule.name: schedule})
    runner.run_due(utc(2026, 1, 1))
    assert runner.run_due(utc(2026, 1, 1, 0, 1)) == 1
    assert Task.objects.get().arguments["args"] == [4, 5]
