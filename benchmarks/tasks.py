"""Benchmark consumers: each records its start in memory, written to a file at exit.

Recording must cost next to nothing, in time or in memory, or it would be what the
benchmark measures (the worker's peak RSS is one of its figures). Each run appends 24
bytes, the task id and a float, to one bytearray: ``+=`` on a bytearray is a single
operation under the GIL, so records from different threads never interleave. The file
is written once, when the worker exits, in the text format ``measure`` reads.
"""

import atexit
import os
import struct
import time
import uuid

from django_taskqueue import consumer

_RECORD = struct.Struct("<16sd")
_records = bytearray()


@atexit.register
def _write() -> None:
    if _records:
        path = os.path.join(os.environ["BENCH_RECORD_DIR"], f"{os.getpid()}.txt")
        with open(path, "a") as file:
            for pk, value in _RECORD.iter_unpack(_records):
                file.write(f"{uuid.UUID(bytes=pk).hex} {value:.6f}\n")


@consumer("bench.noop")
def noop(args, task):
    global _records
    _records += _RECORD.pack(task.pk.bytes, time.time())


@consumer("bench.latency")
def latency(args, task):
    global _records
    _records += _RECORD.pack(task.pk.bytes, time.time() - args["t"])
