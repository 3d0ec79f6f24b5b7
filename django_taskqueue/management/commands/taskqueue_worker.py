"""``manage.py taskqueue_worker``: run tasks from the queue."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from django.core.management.base import BaseCommand

from django_taskqueue.conf import conf
from django_taskqueue.management.options import (
    add_database_argument,
    non_negative_float,
    port_number,
    positive_float,
    positive_int,
)
from django_taskqueue.worker.liveness import HEALTH_TIMEOUT
from django_taskqueue.worker.probes import Probes


class Command(BaseCommand):
    help = "Run tasks from the django_taskqueue queue until stopped (SIGTERM or Ctrl-C)."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--workers",
            type=positive_int,
            default=None,
            help=f"Threads that run tasks (default: TASKQUEUE['WORKER_COUNT'], "
            f"now {conf.WORKER_COUNT}).",
        )
        parser.add_argument(
            "--processes",
            type=positive_int,
            default=None,
            help="Run this many worker processes under a supervisor that replaces any "
            "that dies (default: one unsupervised worker in this process).",
        )
        parser.add_argument(
            "--buffer-size",
            type=positive_int,
            default=None,
            help="Most claimed tasks waiting for a thread (default: TASKQUEUE['BUFFER_SIZE'], "
            f"now {conf.BUFFER_SIZE}).",
        )
        parser.add_argument(
            "--poll-interval",
            type=positive_float,
            default=None,
            help="Seconds between polls (default: TASKQUEUE['POLL_INTERVAL'], "
            f"now {conf.POLL_INTERVAL:g}).",
        )
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            default=None,
            help="Run only tasks of this queue; repeat for several (default: all queues).",
        )
        parser.add_argument(
            "--burst", action="store_true", help="Run what is due, then exit (default: off)."
        )
        parser.add_argument(
            "--max-tasks",
            type=positive_int,
            default=None,
            help="Exit after this many tasks, per process (default: no limit).",
        )
        parser.add_argument(
            "--grace",
            type=non_negative_float,
            default=30.0,
            help="Seconds to wait for running tasks when stopping (default: %(default)g).",
        )
        parser.add_argument(
            "--health-port",
            type=port_number,
            default=None,
            help="Serve GET /health on this port: 200 while the worker's loop turns, 503 "
            "once it has not for --health-timeout seconds (default: no port).",
        )
        parser.add_argument(
            "--health-timeout",
            type=positive_float,
            default=HEALTH_TIMEOUT,
            help="Seconds without a turn of the loop after which /health answers 503 "
            "(default: %(default)g).",
        )
        parser.add_argument(
            "--metrics-port",
            type=port_number,
            default=None,
            help="Serve Prometheus metrics on GET /metrics on this port; needs "
            "prometheus_client (default: no port).",
        )
        parser.add_argument(
            "--http-host",
            default="0.0.0.0",
            help="Address the health and metrics ports listen on (default: %(default)s).",
        )
        add_database_argument(parser)

    def handle(
        self,
        *,
        workers: int | None,
        processes: int | None,
        buffer_size: int | None,
        poll_interval: float | None,
        queues: list[str] | None,
        burst: bool,
        max_tasks: int | None,
        grace: float,
        database: str | None,
        health_port: int | None,
        health_timeout: float,
        metrics_port: int | None,
        http_host: str,
        verbosity: int,
        **options: Any,
    ) -> None:
        from django_taskqueue.worker import Worker
        from django_taskqueue.worker.logs import configure_logging

        configure_logging(verbosity)
        worker_options: dict[str, Any] = {
            "workers": workers,
            "buffer_size": buffer_size,
            "poll_interval": poll_interval,
            "queues": queues,
            "burst": burst,
            "max_tasks": max_tasks,
            "grace": grace,
            "using": database,
        }
        probes = Probes(http_host, health_port, health_timeout, metrics_port)
        if metrics_port is not None:
            from django_taskqueue.metrics import enable

            enable()  # fails here, naming the extra, without prometheus_client
        if processes is not None:
            from django_taskqueue.worker.supervisor import Supervisor

            code = Supervisor(processes, worker_options, verbosity, probes).run()
        else:
            worker = Worker(**worker_options)
            progress = self._progress_bar(worker) if burst and verbosity >= 1 else None
            servers = probes.start(worker.using, lambda: probes.stuck(worker.liveness))
            worker.install_signal_handlers()
            try:
                code = worker.run()
            finally:
                worker.restore_signal_handlers()
                for server in servers:
                    server.stop()
                if progress is not None:
                    progress.stop()
        if code:
            sys.exit(code)

    def _progress_bar(self, worker: Any) -> Any:
        """A progress bar on stderr when it is a terminal: due tasks run so far."""
        from django_taskqueue.models import Task
        from django_taskqueue.progress import ProgressBar

        if not self.stderr.isatty():
            return None
        due = Task.objects.using(worker.using).due()
        if worker.queues:
            due = due.filter(queue__in=worker.queues)
        progress = ProgressBar(sys.stderr, due.count(), lambda: worker.processed)
        progress.start()
        return progress
