"""``--processes N``: N worker processes under one supervisor that replaces dead ones."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import wait
from typing import Any

from .limits import EXIT_TIME_LIMIT
from .stopping import SignalRelay

logger = logging.getLogger("django_taskqueue")


def _child(options: dict[str, Any], verbosity: int) -> None:
    import django

    django.setup()
    from .coordinator import Worker
    from .logs import configure_logging

    configure_logging(verbosity)
    worker = Worker(**options)
    worker.install_signal_handlers(supervised=True)
    raise SystemExit(worker.run())


class Supervisor:
    def __init__(self, processes: int, options: dict[str, Any], verbosity: int = 1) -> None:
        self.processes = processes
        self.options = options
        self.verbosity = verbosity
        self.context = multiprocessing.get_context("spawn")
        self.children: dict[int, Any] = {}  # slot -> Process
        self.stopping = threading.Event()
        self.exit_code = 0

    def _start(self, slot: int) -> None:
        process = self.context.Process(
            target=_child,
            args=(self.options, self.verbosity),
            name=f"taskqueue-worker-{slot}",
            daemon=False,
        )
        process.start()
        self.children[slot] = process
        logger.info("started worker process %d (pid %s)", slot, process.pid)
        if self.stopping.is_set():
            # Stopped while it started: it missed the forwarded SIGTERM.
            assert process.pid is not None  # set by start()
            os.kill(process.pid, signal.SIGTERM)

    def _signal(self, signum: int) -> None:
        """Runs in the signal relay's thread (see :mod:`django_taskqueue.worker.stopping`)."""
        if self.stopping.is_set():
            logger.warning("second signal: killing worker processes")
            for process in list(self.children.values()):
                if process.is_alive():
                    os.kill(process.pid, signal.SIGKILL)
            os._exit(1)
        name = signal.Signals(signum).name
        logger.info("%s: stopping %d worker processes", name, len(self.children))
        self.stopping.set()
        # A copy: the main thread may be replacing a child meanwhile.
        for process in list(self.children.values()):
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    def run(self) -> int:
        from django.db import connections

        connections.close_all()
        relay = SignalRelay(self._signal, name="taskqueue-supervisor-signals")
        relay.install([signal.SIGTERM, signal.SIGINT])
        try:
            for slot in range(self.processes):
                self._start(slot)
            restarts: list[float] = []
            while self.children:
                sentinels = {p.sentinel: slot for slot, p in self.children.items()}
                for sentinel in wait(list(sentinels), timeout=1.0):
                    slot = sentinels[sentinel]
                    process = self.children.pop(slot)
                    process.join()
                    code = process.exitcode
                    if self.stopping.is_set():
                        # Killed by the forwarded SIGTERM before it set up its handlers:
                        # it had not started work, so that is a clean stop too.
                        if code not in (0, -signal.SIGTERM):
                            self.exit_code = 1
                        logger.info("worker process %d exited with %s", slot, code)
                        continue
                    if code == 0 and (self.options.get("burst") or self.options.get("max_tasks")):
                        continue  # done with its work
                    if code == EXIT_TIME_LIMIT:
                        logger.warning(
                            "worker process %d (pid %s) exited after a run passed its time "
                            "limit; replacing it",
                            slot,
                            process.pid,
                        )
                    else:
                        logger.error(
                            "worker process %d (pid %s) died with exit code %s; replacing it",
                            slot,
                            process.pid,
                            code,
                        )
                    now = time.monotonic()
                    restarts = [t for t in restarts if now - t < 10] + [now]
                    if len(restarts) > 3 * self.processes:
                        logger.error("worker processes keep dying; waiting before restarting")
                        self.stopping.wait(5)
                    if not self.stopping.is_set():
                        self._start(slot)
        finally:
            relay.restore()
        return self.exit_code
