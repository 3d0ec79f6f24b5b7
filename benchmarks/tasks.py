"""Benchmark consumers: each records its start in a file of its process, no database."""

import os
import threading
import time

from django_taskqueue import consumer

_lock = threading.Lock()
_fd: int | None = None


def _record(line: str) -> None:
    global _fd
    with _lock:
        if _fd is None:
            path = os.path.join(os.environ["BENCH_RECORD_DIR"], f"{os.getpid()}.txt")
            _fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(_fd, line.encode())


@consumer("bench.noop")
def noop(args, task):
    _record(f"{task.pk.hex} {time.time():.6f}\n")


@consumer("bench.latency")
def latency(args, task):
    _record(f"{task.pk.hex} {time.time() - args['t']:.6f}\n")
