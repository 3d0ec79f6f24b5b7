"""Outcomes the database refuses: stored one by one, a refused one moved to the failure
log, and one that cannot even be moved left to its claim's expiry."""

import re

import pytest
from django.db import connection, connections

from django_taskqueue import enqueue
from django_taskqueue.models import FailedTask, Task
from django_taskqueue.registry import ConsumerRegistry
from django_taskqueue.results import Error, Success
from django_taskqueue.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)

# Triggers that make the database refuse, for tasks of priority 7 only, the UPDATE that
# schedules a retry and the INSERT into the failure log.
REFUSE = {
    "postgresql": (
        [
            "CREATE FUNCTION test_refuse_7() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.priority = 7 AND (TG_TABLE_NAME = 'django_taskqueue_failedtask' "
            "OR NEW.retry_count > OLD.retry_count) THEN "
            "RAISE EXCEPTION 'refused by a test trigger'; END IF; RETURN NEW; END $$",
            "CREATE TRIGGER test_refuse_retry BEFORE UPDATE ON django_taskqueue_task "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_7()",
            "CREATE TRIGGER test_refuse_log BEFORE INSERT ON django_taskqueue_failedtask "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_7()",
        ],
        [
            "DROP TRIGGER IF EXISTS test_refuse_retry ON django_taskqueue_task",
            "DROP TRIGGER IF EXISTS test_refuse_log ON django_taskqueue_failedtask",
            "DROP FUNCTION IF EXISTS test_refuse_7()",
        ],
    ),
    "sqlite": (
        [
            "CREATE TRIGGER test_refuse_retry BEFORE UPDATE ON django_taskqueue_task "
            "WHEN NEW.priority = 7 AND NEW.retry_count > OLD.retry_count "
            "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END",
            "CREATE TRIGGER test_refuse_log BEFORE INSERT ON django_taskqueue_failedtask "
            "WHEN NEW.priority = 7 BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END",
        ],
        ["DROP TRIGGER IF EXISTS test_refuse_retry", "DROP TRIGGER IF EXISTS test_refuse_log"],
    ),
    "mysql": (
        [
            "CREATE TRIGGER test_refuse_retry BEFORE UPDATE ON django_taskqueue_task "
            "FOR EACH ROW BEGIN IF NEW.priority = 7 AND NEW.retry_count > OLD.retry_count "
            "THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by a test trigger'; "
            "END IF; END",
            "CREATE TRIGGER test_refuse_log BEFORE INSERT ON django_taskqueue_failedtask "
            "FOR EACH ROW BEGIN IF NEW.priority = 7 THEN SIGNAL SQLSTATE '45000' "
            "SET MESSAGE_TEXT = 'refused by a test trigger'; END IF; END",
        ],
        ["DROP TRIGGER IF EXISTS test_refuse_retry", "DROP TRIGGER IF EXISTS test_refuse_log"],
    ),
}


@pytest.fixture(params=["default", "other"])
def alias(request):
    """The queue's database, with triggers that refuse tasks of priority 7."""
    create, drop = REFUSE[connection.vendor]
    with connections[request.param].cursor() as cursor:
        for sql in create:
            cursor.execute(sql)
    yield request.param
    with connections[request.param].cursor() as cursor:
        for sql in drop:
            cursor.execute(sql)


@pytest.mark.django_db(transaction=True, databases=["default", "other"])
def test_an_outcome_that_cannot_even_be_moved_to_the_failure_log_is_left_to_expire(alias, caplog):
    caplog.set_level("WARNING", logger="django_taskqueue")
    refused = enqueue("tests.raise", {"message": "boom"}, priority=7, retry_max=3, using=alias)
    fine = enqueue("tests.raise", {"message": "boom"}, priority=8, retry_max=3, using=alias)
    worker = Worker(burst=True, listen=False, workers=1, buffer_size=2, using=alias)
    assert worker.run() == 0
    lines = [r.getMessage() for r in caplog.records]
    # The batch was refused, so each outcome was stored on its own ...
    batch_line = next(line for line in lines if "storing them one by one" in line)
    # Both, or the refused one alone when the other finished more than ACK_DELAY
    # earlier (a loaded machine) and was acknowledged on its own.
    assert re.match(
        rf"worker {worker.lock_id} could not store [12] outcome\(s\) at once \(", batch_line
    )
    assert "refused by a test trigger" in batch_line
    # ... the other task's retry went in ...
    assert Task.objects.using(alias).get(pk=fine.pk).retry_count == 1
    # ... and the refused one could not be moved to the failure log either.
    assert (
        f"task {refused.pk} (tests.raise) could not be moved to the failure log either; "
        "its claim is left to expire (LOCK_TIMEOUT), which counts as a failed attempt"
    ) in lines
    # Not lost: the DELETE that went with the refused INSERT was rolled back with it.
    row = Task.objects.using(alias).get(pk=refused.pk)
    assert row.lock_id == worker.lock_id and row.retry_count == 0  # claimed, as it was
    assert not FailedTask.objects.using(alias).exists()


def test_outcomes_not_stored_when_storing_is_interrupted_go_back_to_be_stored(monkeypatch):
    from django_taskqueue.worker import coordinator

    tasks = [enqueue("tests.noop") for _ in range(3)]
    worker = Worker(burst=True, listen=False, workers=1)
    claimed = worker.db.claim(worker.claimant, 3, worker.clock())
    batch = [(task, Success()) for task in claimed]
    real = coordinator.store_singly

    def interrupted(db, claimant, outcomes, clock):
        stored = real(db, claimant, outcomes, clock)
        yield next(stored)  # the first one is stored, then the process is interrupted
        raise KeyboardInterrupt

    monkeypatch.setattr(coordinator, "store_singly", interrupted)
    with pytest.raises(KeyboardInterrupt):
        worker._store_singly(batch, RuntimeError("the batch failed"))
    assert list(worker._done) == batch[1:]  # in order, for the next try
    assert worker.processed == 1
    assert Task.objects.count() == 2 and len(tasks) == 3


def test_a_fresh_registry_starts_empty_and_registers():
    fresh = ConsumerRegistry()
    assert fresh.names() == []
    assert fresh.consumers_for("x") == ()

    def handler(args):
        return Error("no")

    fresh.register(handler, ("x",))
    assert [c.func for c in fresh.consumers_for("x")] == [handler]
