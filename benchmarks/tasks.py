"""Benchmark consumers: each records its start in memory, written to a file at exit.

Recording must cost next to nothing, or it would be what the benchmark measures:
``list.append`` is atomic, and the file is written once, when the worker exits.
"""

import atexit
import os
import time

from django_taskqueue import consumer

_lines: list[str] = []


@atexit.register
def _write() -> None:
    if _lines:
        path = os.path.join(os.environ["BENCH_RECORD_DIR"], f"{os.getpid()}.txt")
        with open(path, "a") as file:
            file.writelines(_lines)


@consumer("bench.noop")
def noop(args, task):
    _lines.append(f"{task.pk.hex} {time.time():.6f}\n")


@consumer("bench.latency")
def latency(args, task):
    _lines.append(f"{task.pk.hex} {time.time() - args['t']:.6f}\n")
