import pytest
from django.core.management import CommandError, call_command

from django_taskqueue import enqueue
from django_taskqueue.models import Task
from tests.models import Run


@pytest.mark.django_db(transaction=True)
def test_burst_runs_what_is_due_and_exits():
    for n in range(5):
        enqueue("tests.record", {"n": n})
    call_command("taskqueue_worker", "--burst", "--workers", "2", verbosity=0)
    assert Run.objects.count() == 5
    assert not Task.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_max_tasks():
    for n in range(5):
        enqueue("tests.record", {"n": n})
    call_command("taskqueue_worker", "--max-tasks", "2", "--workers", "1", verbosity=0)
    assert Run.objects.count() == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "'0' must be at least 1"),
        (["--workers", "many"], "'many' is not an integer"),
        (["--processes", "-1"], "'-1' must be at least 1"),
        (["--poll-interval", "0"], "'0' must be greater than 0"),
        (["--grace", "soon"], "'soon' is not a number"),
        (["--grace", "-1"], "'-1' must not be negative"),
        (["--buffer-size", "1.5"], "'1.5' is not an integer"),
    ],
)
def test_bad_options_are_refused(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("taskqueue_worker", *args)


def test_unknown_database():
    with pytest.raises(CommandError, match=r"--database: 'nope' is not in settings\.DATABASES"):
        call_command("taskqueue_worker", "--database", "nope")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (["--burst"], {}, 0, "stopped after 1 task"),
        (["--workers", "0"], {}, 2, "argument --workers: '0' must be at least 1"),
        (["--database", "nope"], {}, 2, "argument --database: 'nope' is not in settings"),
        (["--burst"], {"TASKQUEUE_TEST_POLL_INTERVAL": "-1"}, 1, "django_taskqueue.E010"),
    ],
)
def test_exit_codes_of_the_worker_command_run_as_a_process(tmp_path, args, env, code, message):
    # The table in docs/commands.md, checked on the command line itself.
    from tests.processes import worker

    enqueue("tests.record", {"n": 1})
    log = tmp_path / "worker.log"
    process = worker(log, *args, **env)
    assert process.wait(60) == code, log.read_text()
    assert message in log.read_text()


@pytest.mark.parametrize("name", ["taskqueue_worker", "taskqueue_prune", "taskqueue_prune_results"])
def test_every_option_of_our_commands_shows_its_default_the_same_way(name):
    from django.core.management import load_command_class

    parser = load_command_class("django_taskqueue", name).create_parser("manage.py", name)
    django_options = {
        "--help", "--version", "--verbosity", "--settings", "--pythonpath",
        "--traceback", "--no-color", "--force-color", "--skip-checks",
    }  # fmt: skip
    ours = [a for a in parser._actions if not django_options & set(a.option_strings)]
    assert ours
    for action in ours:
        assert "(default: " in (action.help or ""), action.option_strings
