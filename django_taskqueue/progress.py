"""A progress bar for ``taskqueue_worker --burst`` on a terminal."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TextIO


def bar(done: int, total: int, width: int = 30) -> str:
    """``[#########.....]  120/400 tasks`` (total grows if tasks arrive meanwhile)."""
    total = max(total, done, 1)
    filled = width * done // total
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:>{len(str(total))}}/{total} tasks"


class ProgressBar(threading.Thread):
    """Redraws ``bar(done(), total)`` on ``stream`` every ``interval`` seconds."""

    def __init__(
        self, stream: TextIO, total: int, done: Callable[[], int], interval: float = 0.2
    ) -> None:
        super().__init__(name="taskqueue-progress", daemon=True)
        self.stream, self.total, self.done, self.interval = stream, total, done, interval
        self.stopping = threading.Event()

    def draw(self) -> None:
        self.stream.write("\r" + bar(self.done(), self.total))
        self.stream.flush()

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.draw()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=1)
        self.draw()
        self.stream.write("\n")
        self.stream.flush()
