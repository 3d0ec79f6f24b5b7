import io

from django_taskqueue.progress import ProgressBar, bar


def test_bar():
    assert bar(0, 4, width=8) == "[........] 0/4 tasks"
    assert bar(2, 4, width=8) == "[####....] 2/4 tasks"
    assert bar(5, 4, width=8) == "[########] 5/5 tasks"
    assert bar(0, 0, width=4) == "[....] 0/1 tasks"


def test_progress_bar_redraws_and_ends_with_a_newline():
    stream = io.StringIO()
    done = iter(range(100))
    progress = ProgressBar(stream, 10, lambda: next(done), interval=0.01)
    progress.start()
    progress.stop()
    text = stream.getvalue()
    assert text.startswith("\r[") and text.endswith(" tasks\n")
    assert "/10 tasks" in text
