"""The worker's HTTP port for health probes and Prometheus scrapes.

``GET /health`` answers 200 while the worker's loop (every process's, under a
supervisor) turned within the health timeout, and 503 naming the stuck one otherwise.
``GET /metrics`` serves :func:`django_taskqueue.metrics.exposition`. The server runs in
a daemon thread of its own, so it answers however busy the worker is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .liveness import Liveness

logger = logging.getLogger("django_taskqueue")

HEALTH_PATHS = ("/health", "/healthz", "/livez")
Answer = tuple[int, bytes, str]


class ProbeServer:
    """Serves ``routes`` (path -> callable giving status, body and content type)."""

    def __init__(self, host: str, port: int, routes: dict[str, Callable[[], Answer]]) -> None:
        self.routes = routes
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = server.routes.get(self.path.split("?", 1)[0])
                try:
                    status, body, content_type = (
                        route() if route else (404, b"not found\n", "text/plain")
                    )
                except Exception as exc:
                    logger.exception("%s failed", self.path)
                    status, body, content_type = (500, f"{exc!r}\n".encode(), "text/plain")
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                logger.debug("probe %s", format % args)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port: int = self.httpd.server_address[1]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="taskqueue-probes", daemon=True
        )

    def start(self) -> ProbeServer:
        self._thread.start()
        logger.info(
            "serving %s on port %d",
            " and ".join(sorted(set(self.routes) - {"/healthz", "/livez"})),
            self.port,
        )
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def health_answer(stuck: list[str]) -> Answer:
    if stuck:
        return 503, ("stuck: " + "; ".join(stuck) + "\n").encode(), "text/plain"
    return 200, b"ok\n", "text/plain"


def metrics_answer(using: str) -> Answer:
    from ..metrics import exposition

    body, content_type = exposition(using)
    return 200, body, content_type


@dataclass(frozen=True)
class Probes:
    """What ``--health-port``, ``--health-timeout``, ``--metrics-port`` and
    ``--http-host`` asked for."""

    host: str = "127.0.0.1"
    health_port: int | None = None
    timeout: float = 60.0
    metrics_port: int | None = None

    def start(self, using: str, stuck: Callable[[], list[str]]) -> list[ProbeServer]:
        """Start the servers the ports ask for (one if both are the same port)."""
        ports: dict[int, dict[str, Callable[[], Answer]]] = {}
        if self.health_port is not None:
            for path in HEALTH_PATHS:
                ports.setdefault(self.health_port, {})[path] = lambda: health_answer(stuck())
        if self.metrics_port is not None:
            ports.setdefault(self.metrics_port, {})["/metrics"] = lambda: metrics_answer(using)
        return [ProbeServer(self.host, port, routes).start() for port, routes in ports.items()]

    def stuck(self, liveness: Liveness) -> list[str]:
        return loop_stuck("the worker", liveness.turned_at, time.monotonic(), self.timeout)


def loop_stuck(name: str, turned_at: float, now: float, timeout: float) -> list[str]:
    since = now - turned_at
    return [f"{name}: its loop has not turned for {since:.0f} s"] if since > timeout else []
