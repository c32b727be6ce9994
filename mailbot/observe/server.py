"""The HTTP endpoint: ``/metrics`` for Prometheus, ``/healthz`` for a load balancer or a probe.

The standard library's WSGI server in one daemon thread (a thread per request, so a
slow scrape never blocks a health probe); ``prometheus_client.make_wsgi_app`` renders
the daemon's own registry. It only reads: nothing here can change what mailbot does.
Unauthenticated by design, hence loopback by default (``[metrics] listen``).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from mailbot.observe.health import Health

log = logging.getLogger("mailbot.metrics")

StartResponse = Callable[..., Any]


def make_app(registry: CollectorRegistry, health: Callable[[], Health]) -> Callable[..., Any]:
    """The WSGI application: ``/metrics`` (and ``/``), ``/healthz``, 404 for the rest."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/metrics", "/"):
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            try:
                verdict = health()
            except Exception as exc:  # the probe must get an answer, and it is "not healthy"
                log.exception("healthz: the check itself failed")
                verdict = Health(False, [f"health check failed: {type(exc).__name__}: {exc}"])
            return _reply(start_response, "200 OK" if verdict.ok else "503 Service Unavailable",
                          json.dumps(verdict.as_json(), ensure_ascii=False).encode() + b"\n",
                          "application/json")
        return _reply(start_response, "404 Not Found", b"not here: try /metrics or /healthz\n",
                      "text/plain; charset=utf-8")

    return app


def _reply(start_response: StartResponse, status: str, body: bytes,
           content_type: str) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store")])
    return [body]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """A scrape every 15 s is not news: no access log on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class MetricsServer:
    """Serves ``app`` on ``host:port`` from a daemon thread between ``start`` and ``stop``."""

    def __init__(self, host: str, port: int, app: Callable[..., Any]) -> None:
        self.host, self.port, self.app = host, port, app
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve; raises ``OSError`` when the address cannot be had (port in use)."""
        server_class = _Server6 if ":" in self.host else _Server
        server = make_server(self.host, self.port, self.app, server_class=server_class,
                             handler_class=_QuietHandler)
        self._server = server  # type: ignore[assignment]
        self.port = server.server_address[1]  # port 0 asks the kernel for a free one
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="metrics-http", daemon=True)
        self._thread.start()
        log.info("metrics: serving /metrics and /healthz on http://%s:%d/",
                 f"[{self.host}]" if ":" in self.host else self.host, self.port)

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
