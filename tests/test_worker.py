"""The worker driven in-process: claiming, outcomes, claims and shutdown."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_taskqueue import enqueue
from django_taskqueue.db import Claimant, queue_db
from django_taskqueue.models import FailedTask, Task, uuid7
from django_taskqueue.results import Success
from django_taskqueue.signals import task_failed, task_finished, task_started
from django_taskqueue.worker import Worker
from tests.factories import TaskFactory
from tests.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


class Clock:
    """A controllable "now" for the worker."""

    def __init__(self):
        self.now = timezone.now()

    def __call__(self):
        return self.now

    def advance(self, **kwargs):
        self.now += timedelta(**kwargs)


class Store:
    """The database layer bound to one claimant, as a worker uses it."""

    def __init__(self, lock_timeout=60, queues=()):
        self.db = queue_db("default")
        self.lock_id = uuid7()
        self.claimant = Claimant(self.lock_id, timedelta(seconds=lock_timeout), tuple(queues))

    def __getattr__(self, name):
        method = getattr(self.db, name)
        if name == "recover_stale":
            return lambda now: method(self.claimant.lock_timeout, now)
        return lambda *args: method(self.claimant, *args)


def storage(**kwargs):
    return Store(**kwargs)


def burst(**kwargs):
    options = {"workers": 4, "burst": True, "listen": False, "grace": 5}
    worker = Worker(**{**options, **kwargs})
    assert worker.run() == 0
    return worker


def test_burst_drains_every_due_task_once():
    for n in range(60):
        enqueue("tests.record", {"n": n})
    enqueue("tests.record", {"n": "later"}, delay_hours=1)
    worker = burst(buffer_size=8)
    assert worker.processed == 60
    assert Run.objects.count() == 60
    assert Run.objects.values("task_id").distinct().count() == 60
    assert list(Task.objects.values_list("arguments", flat=True)) == [{"n": "later"}]


def test_claim_takes_priority_then_start_at_and_marks_the_claim():
    now = timezone.now()
    low = TaskFactory(priority=20, start_at=now - timedelta(minutes=5))
    urgent_new = TaskFactory(priority=1, start_at=now - timedelta(seconds=1))
    urgent_old = TaskFactory(priority=1, start_at=now - timedelta(seconds=10))
    TaskFactory(priority=0, scheduled=True)
    TaskFactory(priority=0, running=True)
    store = storage()
    claimed = store.claim(2, now)
    assert claimed == [urgent_old, urgent_new]
    for task in Task.objects.filter(pk__in=[t.pk for t in claimed]):
        assert task.lock_id == store.lock_id
        assert task.locked_until == now + timedelta(seconds=60)
    assert store.claim(10, now) == [low]
    assert store.claim(10, now) == []


@pytest.mark.parametrize("with_receiver", [False, True])
def test_claimed_tasks_are_complete_model_instances(with_receiver):
    from django.db.models.signals import post_init

    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.pk)

    arguments = {"text": "é", "list": [1, 2.5, None], "nested": {"a": True}}
    for n in range(3):
        enqueue("tests.record", {**arguments, "n": n}, signature=f"s{n}", retry_max=4)
    store = storage()
    now = timezone.now()
    if with_receiver:
        post_init.connect(receiver, sender=Task)
    try:
        # The claim on PostgreSQL and the one-statement cycle both build instances.
        claimed = store.claim(1, now)
        _, claimed[1:] = store.acknowledge_and_claim([], 2, now)
    finally:
        post_init.disconnect(receiver, sender=Task)
    assert len(claimed) == 3
    if with_receiver:
        assert seen == [t.pk for t in claimed]
    for task in claimed:
        stored = Task.objects.get(pk=task.pk)
        for field in Task._meta.concrete_fields:
            assert getattr(task, field.attname) == getattr(stored, field.attname), field.name
        assert task._state.adding is False and task._state.db == "default"
        assert task == stored
    # Saving a claimed instance updates its row, as for any instance from the ORM.
    claimed[0].error = "edited"
    claimed[0].save(update_fields=["error"])
    assert Task.objects.get(pk=claimed[0].pk).error == "edited"


def test_claim_filters_queues():
    TaskFactory(queue="images")
    mail = TaskFactory(queue="mail")
    assert storage(queues=["mail", "other"]).claim(10, timezone.now()) == [mail]


def test_claim_query_count_does_not_grow_with_the_batch():
    TaskFactory.create_batch(41)
    now = timezone.now()
    storage().claim(1, now)  # a connection's first claim on PostgreSQL also sets it up
    counts = []
    for size in (1, 30):
        with CaptureQueriesContext(connection) as ctx:
            assert len(storage().claim(size, now)) == size
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]


def test_two_workers_never_claim_the_same_task():
    TaskFactory.create_batch(200)
    results, errors = [], []
    barrier = threading.Barrier(4)

    def claim_all():
        store = storage()
        try:
            barrier.wait(30)
            while batch := store.claim(7, timezone.now()):
                results.extend(t.pk for t in batch)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(results) == 200
    assert len(set(results)) == 200


def run_one(task, clock):
    """Claim ``task`` with a fresh worker at ``clock`` and run it to its outcome."""
    worker = Worker(workers=1, burst=True, listen=False, clock=clock, grace=5)
    assert worker.run() == 0
    return worker


def test_error_retries_with_exponential_backoff():
    task = enqueue("tests.raise", {"message": "flaky"}, retry_max=3)
    clock = Clock()
    for attempt, wait_minutes in enumerate([1, 2, 4]):
        run_one(task, clock)
        row = Task.objects.get(pk=task.pk)
        assert row.retry_count == attempt + 1
        assert row.start_at == clock.now + timedelta(minutes=wait_minutes)
        assert row.lock_id is None and row.locked_until is None
        assert "ValueError: flaky" in row.error
        assert "Traceback (most recent call last)" in row.error
        # Not due yet: a worker finds nothing.
        assert run_one(task, clock).processed == 0
        clock.now = row.start_at
    run_one(task, clock)  # the fourth failure is past retry_max=3
    assert not Task.objects.exists()
    failed = FailedTask.objects.get()
    assert failed.task_id == task.pk
    assert failed.retry_count == 3
    assert "gave up after 4 attempts (retry_max=3)" in failed.error
    assert "ValueError: flaky" in failed.error


def test_backoff_exponent_is_capped(taskqueue_settings):
    taskqueue_settings["BACKOFF_EXPONENT_CAP"] = 2
    task = TaskFactory(name="tests.error", retry_count=6, retry_max=10)
    clock = Clock()
    run_one(task, clock)
    assert Task.objects.get(pk=task.pk).start_at == clock.now + timedelta(minutes=4)


def test_signed_task_retries_like_any_other():
    task = enqueue("tests.raise", signature="signed", retry_max=1)
    clock = Clock()
    run_one(task, clock)
    row = Task.objects.get(pk=task.pk)
    assert (row.retry_count, row.signature) == (1, "signed")
    clock.now = row.start_at
    run_one(task, clock)
    assert not Task.objects.exists()
    assert FailedTask.objects.get().signature == "signed"


def test_failure_goes_straight_to_the_failure_log():
    task = enqueue("tests.failure", {"x": 1})
    run_one(task, Clock())
    assert not Task.objects.exists()
    failed = FailedTask.objects.get()
    assert (failed.retry_count, failed.error, failed.arguments) == (0, "cannot ever work", {"x": 1})


def test_every_consumer_ignoring_is_a_permanent_failure():
    task = enqueue("tests.ignored")
    run_one(task, Clock())
    assert not Task.objects.exists()
    assert "every consumer of 'tests.ignored' ignored the task" in FailedTask.objects.get().error


def test_requeue_walks_through_steps_carrying_arguments():
    enqueue("tests.steps", {"total": 3}, priority=4, signature="walk")
    burst(workers=1)
    # Each run saw the position the previous one left in the arguments.
    positions = [r.arguments.get("position", 0) for r in Run.objects.order_by("id")]
    assert positions == [0, 1, 2]
    assert not Task.objects.exists()


def test_requeue_copy_keeps_priority_signature_and_resets_retry_count():
    task = TaskFactory(
        name="tests.steps", arguments={"total": 5}, priority=4, signature="w", retry_count=2
    )
    assert Worker(workers=1, max_tasks=1, listen=False).run() == 0
    copy = Task.objects.get()
    assert copy.pk != task.pk
    assert (copy.priority, copy.signature, copy.retry_count) == (4, "w", 0)
    assert copy.arguments == {"total": 5, "position": 1}


def test_a_late_finisher_does_not_touch_a_task_taken_over():
    task = TaskFactory(name="tests.record")
    now = timezone.now()
    first, second = storage(lock_timeout=10), storage(lock_timeout=10)
    [claimed] = first.claim(1, now)
    later = now + timedelta(seconds=11)
    assert second.recover_stale(later).retried == 1
    assert second.claim(1, later) == [task]
    from django_taskqueue.results import Error, Success

    report = first.finish([(claimed, Success())], later)
    assert (report.deleted, report.lost) == (0, 1)
    report = first.finish([(claimed, Error("late"))], later)
    assert (report.retried, report.lost) == (0, 1)
    row = Task.objects.get()
    assert row.lock_id == second.lock_id
    assert row.retry_count == 1


def test_heartbeat_extends_only_this_workers_claims():
    TaskFactory.create_batch(2)
    now = timezone.now()
    mine, other = storage(lock_timeout=10), storage(lock_timeout=10)
    [a] = mine.claim(1, now)
    [b] = other.claim(1, now)
    assert mine.heartbeat([a.pk, b.pk], now + timedelta(seconds=5)) == 1
    assert Task.objects.get(pk=a.pk).locked_until == now + timedelta(seconds=15)
    assert Task.objects.get(pk=b.pk).locked_until == now + timedelta(seconds=10)


def test_stale_claims_count_as_attempts_and_end_in_the_failure_log():
    task = TaskFactory(retry_max=1)
    now = timezone.now()
    store = storage(lock_timeout=10)
    for expiry in range(2):
        assert store.claim(1, now) == [task]
        now += timedelta(seconds=11)
        report = store.recover_stale(now)
        if expiry == 0:
            assert report.retried == 1
            row = Task.objects.get()
            assert row.retry_count == 1 and row.lock_id is None
            assert "claim on this task expired" in row.error
    assert report.retried == 0 and len(report.failed) == 1
    assert not Task.objects.exists()
    failed = FailedTask.objects.get()
    assert "gave up after 2 attempts (retry_max=1)" in failed.error
    assert "the worker running it died" in failed.error


def test_live_worker_keeps_its_claim_on_a_long_task():
    task = enqueue("tests.sleep", {"seconds": 2.5})
    worker = Worker(workers=1, burst=True, listen=False, lock_timeout=1, grace=5)
    thread = threading.Thread(target=worker.run)
    thread.start()
    thread.join(20)
    assert not thread.is_alive()
    # The claim was extended while it ran, so no one recovered it and it ran once.
    assert Run.objects.filter(task_id=task.pk, name="tests.sleep").count() == 1
    assert not Task.objects.exists()
    assert not FailedTask.objects.exists()


def test_finished_runs_are_acknowledged_soon_while_others_still_run():
    # Acknowledgements ride along with claims, or wait ACK_DELAY for company; a
    # worker busy with a long task must not sit on a finished one until its next
    # heartbeat.
    sleeper = enqueue("tests.sleep", {"seconds": 3}, priority=0)
    quick = enqueue("tests.record", {"n": 1}, priority=1)
    worker = Worker(workers=2, listen=False, grace=10)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not Run.objects.filter(task_id=quick.pk).exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        ran = time.monotonic()
        while Task.objects.filter(pk=quick.pk).exists():
            assert time.monotonic() - ran < 1.0, "the finished task was not acknowledged"
            time.sleep(0.01)
        # Still running: the acknowledgement did not wait for the worker to go idle.
        assert not Run.objects.filter(task_id=sleeper.pk, name="tests.sleep.done").exists()
        assert Task.objects.filter(pk=sleeper.pk, lock_id=worker.lock_id).exists()
    finally:
        worker.stop()
        thread.join(20)
    assert worker.exit_code == 0
    assert worker.processed == 2
    assert not Task.objects.exists()


def test_claimed_tasks_run_in_claim_order():
    for n in range(6):
        enqueue("tests.record", {"n": n}, priority=10 - n)
    burst(workers=1, buffer_size=6)
    assert list(Run.objects.order_by("id").values_list("arguments__n", flat=True)) == [
        5,
        4,
        3,
        2,
        1,
        0,
    ]


def test_postgresql_claim_keeps_an_index_plan_when_prepared():
    """A prepared claim's generic plan must not scan the table to find the batch."""
    if queue_db().vendor != "postgresql":
        pytest.skip("PostgreSQL's database layer only")
    Task.objects.bulk_create(
        Task(name="tests.record", arguments={}, start_at=timezone.now()) for _ in range(2000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_taskqueue_task")
    store = storage()
    claim_sql, params = store.db.claim_sql(store.claimant, 32, timezone.now())
    for index in range(len(params)):
        claim_sql = claim_sql.replace("%s", f"${index + 1}", 1)
    with connection.cursor() as cursor:
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        try:
            cursor.execute(f"PREPARE taskqueue_claim_plan AS {claim_sql}")
            placeholders = ", ".join(["%s"] * len(params))
            cursor.execute(
                f"EXPLAIN EXECUTE taskqueue_claim_plan({placeholders})",
                params,
            )
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE ALL")
            cursor.execute("RESET plan_cache_mode")
    assert "Seq Scan" not in plan, plan
    assert "django_taskqueue_task_pkey" in plan, plan


def _prepared_claims():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%django_taskqueue_task%"],
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("prepare", [True, False])
def test_postgresql_worker_statements_are_prepared_unless_turned_off(taskqueue_settings, prepare):
    if queue_db().vendor != "postgresql":
        pytest.skip("PostgreSQL's database layer only")
    taskqueue_settings["PREPARE_STATEMENTS"] = prepare
    for n in range(5):
        enqueue("tests.record", {"n": n})
    store = storage()
    now = timezone.now()
    tasks = store.claim(2, now)
    store.acknowledge_and_claim([(t, Success()) for t in tasks], 2, now)
    assert (_prepared_claims() > 0) is prepare
    # Django's own queries on the connection stay unprepared either way.
    for _ in range(10):
        list(Task.objects.filter(name="tests.record"))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement NOT LIKE %s",
            ["%pg_prepared_statements%"],
        )
        unrelated = cursor.fetchone()[0]
    assert unrelated == (_prepared_claims() if prepare else 0)


def test_postgresql_worker_carries_on_when_prepared_statements_vanish(caplog):
    # A transaction-pooling proxy that does not track prepared statements hands the
    # next statement to a server connection that never saw it.
    if queue_db().vendor != "postgresql":
        pytest.skip("PostgreSQL's database layer only")
    caplog.set_level("WARNING", logger="django_taskqueue")
    for n in range(8):
        enqueue("tests.record", {"n": n})
    store = storage()
    now = timezone.now()
    tasks = store.claim(2, now)
    _, tasks = store.acknowledge_and_claim([(t, Success()) for t in tasks], 2, now)
    assert store.db.prepare and _prepared_claims() >= 2
    # Behind psycopg's back, so it still believes the statements exist.
    connection.connection.pgconn.exec_(b"DEALLOCATE ALL")
    report, more = store.acknowledge_and_claim([(t, Success()) for t in tasks], 2, now)
    assert report.deleted == 2 and len(more) == 2
    assert store.db.prepare is False
    assert "prepared statements do not survive" in caplog.text
    assert Task.objects.count() == 4
    assert Task.objects.filter(lock_id=store.lock_id).count() == 2


def test_max_tasks():
    for n in range(10):
        enqueue("tests.record", {"n": n})
    worker = Worker(workers=2, max_tasks=4, listen=False)
    assert worker.run() == 0
    assert worker.processed == 4
    assert Task.objects.count() == 6


def test_stop_releases_unstarted_tasks_and_waits_for_running_ones():
    sleeper = enqueue("tests.sleep", {"seconds": 1}, priority=0)
    others = [enqueue("tests.record", {"n": n}) for n in range(5)]
    worker = Worker(workers=1, buffer_size=10, listen=False, grace=10)
    thread = threading.Thread(target=worker.run)
    thread.start()
    deadline = time.monotonic() + 10
    while not Run.objects.filter(task_id=sleeper.pk).exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    worker.stop()
    # Released before the running task finishes: others can take them at once.
    while Task.objects.filter(pk__in=[t.pk for t in others], lock_id__isnull=False).exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert Task.objects.filter(pk=sleeper.pk, lock_id=worker.lock_id).exists()
    thread.join(20)
    assert worker.exit_code == 0
    assert Run.objects.filter(task_id=sleeper.pk, name="tests.sleep.done").exists()
    assert not Task.objects.filter(pk=sleeper.pk).exists()
    assert Task.objects.count() == 5


def test_signals():
    seen = []

    def on_started(sender, task, **kwargs):
        seen.append(("started", task.name))

    def on_finished(sender, task, result, **kwargs):
        seen.append(("finished", type(result).__name__))

    def on_failed(sender, task, error, **kwargs):
        seen.append(("failed", error))

    task_started.connect(on_started)
    task_finished.connect(on_finished)
    task_failed.connect(on_failed)
    try:
        enqueue("tests.failure")
        burst(workers=1)
    finally:
        task_started.disconnect(on_started)
        task_finished.disconnect(on_finished)
        task_failed.disconnect(on_failed)
    assert seen == [
        ("started", "tests.failure"),
        ("finished", "Failure"),
        ("failed", "cannot ever work"),
    ]


def test_log_lines_carry_task_id_and_name(caplog):
    caplog.set_level("INFO", logger="django_taskqueue")
    task = enqueue("tests.raise", {"message": "logged"})
    burst(workers=1)
    assert f"task {task.pk} (tests.raise) raised" in caplog.text
    assert "ValueError: logged" in caplog.text


def test_threads_keep_their_connection_across_tasks(settings):
    # Counted as Django opens them: id() of a connection object can repeat after a free.
    from django.db.backends.signals import connection_created

    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
    opened = []

    def count(sender, connection, **kwargs):
        if threading.current_thread().name.startswith("taskqueue-worker"):
            opened.append(connection.alias)

    for _ in range(10):
        enqueue("tests.connection")
    connection_created.connect(count)
    try:
        burst(workers=1)
    finally:
        connection_created.disconnect(count)
    assert Run.objects.count() == 10
    assert opened == ["default"]


def _in_transaction():
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@in_transaction")
        return cursor.fetchone()[0]


def _locked_elsewhere():
    """Claimed rows as another connection sees them (committed work only)."""
    from django.db import connections

    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), count(lock_id) FROM django_taskqueue_task",
            )
            return cursor.fetchone()
    finally:
        other.close()


def test_cycle_is_one_transaction_that_leaves_django_in_autocommit():
    # The claim's transaction is atomic()'s: Django's view of the connection is
    # autocommit again afterwards, outside any atomic block, with nothing left open.
    for n in range(5):
        enqueue("tests.record", {"n": n})
    store = storage()
    now = timezone.now()
    first = store.claim(2, now)
    assert len(first) == 2 and all(t.lock_id == store.lock_id for t in first)
    assert _locked_elsewhere() == (5, 2)
    report, second = store.acknowledge_and_claim([(t, Success()) for t in first], 2, now)
    assert report.deleted == 2 and len(second) == 2
    assert {t.pk for t in second}.isdisjoint({t.pk for t in first})
    assert _locked_elsewhere() == (3, 2)
    assert connection.get_autocommit() and not connection.in_atomic_block
    if connection.vendor == "mysql":
        assert _in_transaction() == 0


def test_claim_inside_a_transaction_joins_it():
    enqueue("tests.record")
    store = storage()

    class Boom(Exception):
        pass

    committed = []
    # Inside an atomic block the claim joins it, and goes with its rollback.
    with pytest.raises(Boom), transaction.atomic():
        transaction.on_commit(lambda: committed.append("rolled back"))
        assert len(store.claim(5, timezone.now())) == 1
        raise Boom
    assert _locked_elsewhere() == (1, 0)
    # ... and the caller's on_commit callbacks run once it commits, not before.
    with transaction.atomic():
        transaction.on_commit(lambda: committed.append("committed"))
        assert len(store.claim(5, timezone.now())) == 1
        assert committed == [] and connection.in_atomic_block
    assert committed == ["committed"]
    assert _locked_elsewhere() == (1, 1)


def _hand_out(worker, count=None):
    """Do what the executor threads do with claimed tasks: take them, run them."""
    taken = []
    while count is None or len(taken) < count:
        try:
            taken.append(worker._ready.get_nowait())
        except Exception:
            break
    return taken


def _held_in_db(worker):
    return Task.objects.filter(lock_id=worker.lock_id).count()


def test_threads_that_run_dry_get_the_next_batch_claimed_while_one_waits():
    # Short tasks and a deep queue: the threads finished everything handed to them
    # before the last full claim came back, so the next batch is claimed at once,
    # while the one just claimed waits, instead of after it ran.
    for n in range(20):
        enqueue("tests.record", {"n": n})
    worker = Worker(workers=1, buffer_size=4, listen=False)
    worker._cycle(time.monotonic())
    assert _held_in_db(worker) == 4
    # The first claim says nothing about how fast tasks go: top up as usual.
    assert worker._claim_size() == 0
    for task in _hand_out(worker):
        worker._done.append((task, Success()))
    worker._cycle(time.monotonic())  # acknowledges 4, claims 4
    assert _held_in_db(worker) == 4
    assert worker._claim_size() == 4
    worker._cycle(time.monotonic())
    assert _held_in_db(worker) == 8
    assert worker._ready.qsize() == 8
    # Never more than two batches wait.
    assert worker._claim_size() == 0


def test_threads_that_keep_busy_never_have_more_than_a_buffer_waiting():
    for n in range(20):
        enqueue("tests.record", {"n": n})
    worker = Worker(workers=2, buffer_size=4, listen=False)
    worker._cycle(time.monotonic())
    running = _hand_out(worker, 1)
    assert worker._claim_size() == 0  # 3 wait: above the low-water mark
    running += _hand_out(worker, 1)
    assert worker._claim_size() == 2  # 2 wait: top up to 4
    worker._cycle(time.monotonic())
    assert worker._ready.qsize() == 4
    assert _held_in_db(worker) == 6  # 2 running, 4 waiting
    # The threads did not run dry while the claim was on its way: no claim ahead.
    assert worker._claim_size() == 0
    for task in running + _hand_out(worker):
        worker._done.append((task, Success()))
    worker._flush()
    assert _held_in_db(worker) == 0


def _plan_cache_mode():
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        return cursor.fetchone()[0]


@pytest.mark.parametrize("prepare", [True, False])
def test_postgresql_worker_plans_its_prepared_statements_once(taskqueue_settings, prepare):
    # Left to itself, PostgreSQL plans the prepared claim anew at every run (its
    # generic plan's estimate looks dearer), which costs the server a fifth of its
    # work per task.
    if queue_db().vendor != "postgresql":
        pytest.skip("PostgreSQL's database layer only")
    taskqueue_settings["PREPARE_STATEMENTS"] = prepare
    connection.close()  # a fresh connection, with the server's default plan_cache_mode
    assert _plan_cache_mode() == "auto"
    for n in range(40):
        enqueue("tests.record", {"n": n})
    store = storage()
    tasks = []
    for _ in range(8):
        tasks = store.acknowledge_and_claim([(t, Success()) for t in tasks], 4, timezone.now())[1]
    assert _plan_cache_mode() == ("force_generic_plan" if prepare else "auto")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement LIKE %s",
            ["WITH done AS (DELETE FROM %"],
        )
        plans = cursor.fetchall()
    if prepare:
        assert len(plans) == 1
        generic, custom = plans[0]
        assert generic >= 7 and custom == 0, plans
    else:
        assert plans == []
    connection.close()


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has no connections to kill")
def test_an_executor_whose_idle_connection_the_server_dropped_reconnects_before_its_task():
    # Only the executor thread's connection is killed: the coordinator sees no outage,
    # so nothing but the thread's own check after being idle can notice.
    worker = Worker(workers=1, listen=False, poll_interval=0.1)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        first = enqueue("tests.backend")
        deadline = time.monotonic() + 30
        while not Run.objects.filter(task_id=first.pk).exists():
            assert time.monotonic() < deadline, "the first task did not run"
            time.sleep(0.05)
        backend = Run.objects.get(task_id=first.pk).arguments["backend"]
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
            else:
                cursor.execute(f"KILL CONNECTION {int(backend)}")
        time.sleep(1.5)  # longer than executor.IDLE_CHECK
        second = enqueue("tests.backend")
        deadline = time.monotonic() + 10
        while not Run.objects.filter(task_id=second.pk).exists():
            # Without the check, the run fails on the dead connection and is retried
            # only after the one-minute backoff.
            assert time.monotonic() < deadline, "the task after the kill did not run at once"
            time.sleep(0.05)
        assert Run.objects.get(task_id=second.pk).arguments["backend"] != backend
        assert Task.objects.filter(retry_count__gt=0).count() == 0
    finally:
        worker.stop()
        thread.join(30)
