"""``--processes N``: N worker processes under one supervisor that replaces dead ones."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from multiprocessing.connection import wait
from typing import Any

from ..conf import conf
from .limits import EXIT_TIME_LIMIT
from .liveness import SystemdNotifier
from .probes import Probes, loop_stuck
from .stopping import SignalRelay

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"

logger = logging.getLogger("django_taskqueue")


def _child(
    options: dict[str, Any], verbosity: int, turns: Any = None, slot: int = 0, metrics: bool = False
) -> None:
    import django

    django.setup()
    from .coordinator import Worker
    from .liveness import Liveness
    from .logs import configure_logging

    configure_logging(verbosity)
    if metrics:
        from ..metrics import enable

        enable()  # into the supervisor's PROMETHEUS_MULTIPROC_DIR
    worker = Worker(**options)
    # The supervisor reads when its loop turned; it alone speaks to systemd.
    worker.liveness = Liveness(turns, slot, notify=False)
    worker.install_signal_handlers(supervised=True)
    raise SystemExit(worker.run())


class Supervisor:
    def __init__(
        self,
        processes: int,
        options: dict[str, Any],
        verbosity: int = 1,
        probes: Probes | None = None,
    ) -> None:
        self.processes = processes
        self.options = options
        self.verbosity = verbosity
        self.probes = probes or Probes()
        self.context = multiprocessing.get_context("spawn")
        self.children: dict[int, Any] = {}  # slot -> Process
        self.stopping = threading.Event()
        self.exit_code = 0
        # When each child's loop last turned (time.monotonic(), system-wide).
        self.turns: Any = self.context.Array("d", processes, lock=False)
        self.notifier = SystemdNotifier.from_environment()

    def stuck(self) -> list[str]:
        """The children whose loop has not turned within the health timeout."""
        now = time.monotonic()
        return [
            problem
            for slot, process in list(self.children.items())
            for problem in loop_stuck(
                f"worker process {slot} (pid {process.pid})",
                self.turns[slot],
                now,
                self.probes.timeout,
            )
        ]

    def _start(self, slot: int) -> None:
        self.turns[slot] = time.monotonic()  # starting counts as turning
        process = self.context.Process(
            target=_child,
            args=(
                self.options,
                self.verbosity,
                self.turns,
                slot,
                self.probes.metrics_port is not None,
            ),
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
        if self.notifier is not None:
            self.notifier.send("STOPPING=1")
        # A copy: the main thread may be replacing a child meanwhile.
        for process in list(self.children.values()):
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)

    def run(self) -> int:
        from django.db import connections

        using = str(self.options.get("using") or conf.DATABASE)
        connections.close_all()
        relay = SignalRelay(self._signal, name="taskqueue-supervisor-signals")
        relay.install([signal.SIGTERM, signal.SIGINT])
        metrics_dir = None
        if self.probes.metrics_port is not None and not os.environ.get(MULTIPROC_DIR):
            # The children count into files there; the supervisor serves their sum.
            metrics_dir = os.environ[MULTIPROC_DIR] = tempfile.mkdtemp(prefix="taskqueue-")
        servers = self.probes.start(using, self.stuck)
        try:
            for slot in range(self.processes):
                self._start(slot)
            if self.notifier is not None:
                self.notifier.send("READY=1")
            restarts: list[float] = []
            while self.children:
                if self.notifier is not None and not self.stuck():
                    self.notifier.alive(time.monotonic())
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
            for server in servers:
                server.stop()
            if metrics_dir is not None:
                del os.environ[MULTIPROC_DIR]
                shutil.rmtree(metrics_dir, ignore_errors=True)
        return self.exit_code
