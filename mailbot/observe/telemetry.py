"""The one handle a daemon reports to: metrics, mailbox reachability, health, the endpoint.

The daemon calls it at the few places where something countable happens; it always
counts (a counter is cheap) and serves ``/metrics`` and ``/healthz`` only when
``[metrics] enabled``. It reads the daemon's *current* app through a callable, so a
SIGHUP reload (new config, same database and clock) needs nothing from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from mailbot.errors import ConfigError
from mailbot.observe.health import Health, check_health
from mailbot.observe.metrics import Metrics
from mailbot.observe.processed import Processed
from mailbot.observe.reach import Reachability
from mailbot.observe.server import MetricsServer, make_app
from mailbot.outbox.worker import FlushReport
from mailbot.schedule.runner import TickReport

if TYPE_CHECKING:
    from mailbot.daemon import App


class Telemetry:
    def __init__(self, app: Callable[[], App]) -> None:
        self._app = app
        self.metrics = Metrics(lambda: (app().db, app().clock))
        self.reach = Reachability()
        self.server: MetricsServer | None = None

    # -- what happened -------------------------------------------------------------------

    def processed(self, item: Processed) -> None:
        self.metrics.processed(item)

    def flushed(self, report: FlushReport) -> None:
        self.metrics.flushed(report)

    def ticked(self, report: TickReport) -> None:
        self.metrics.ticked(report, self._app().clock.now())

    def imap_reached(self, mailbox: str) -> None:
        self.reach.reached(mailbox, self._app().clock.now())
        self.metrics.imap_reached(mailbox)

    def imap_failed(self, mailbox: str, stage: str, error: BaseException) -> None:
        """``stage``: "connect" (login, select) or "fetch" (drain, IDLE, polling)."""
        self.reach.failed(mailbox, self._app().clock.now(), f"{type(error).__name__}: {error}")
        self.metrics.imap_failed(mailbox, stage)

    def forget(self, mailbox: str) -> None:
        self.reach.forget(mailbox)
        self.metrics.forget(mailbox)

    # -- what an operator asks -----------------------------------------------------------

    def health(self) -> Health:
        app = self._app()
        return check_health(app.config, app.db, app.clock.now(), self.reach)

    def serve(self) -> None:
        """Start the endpoint if ``[metrics] enabled``; a taken port is a config error."""
        config = self._app().config
        if not config.metrics.enabled:
            return
        host, port = config.metrics.address
        server = MetricsServer(host, port, make_app(self.metrics.registry, self.health))
        try:
            server.start()
        except OSError as exc:
            raise ConfigError(str(config.source), "metrics.listen",
                              f"cannot listen on {config.metrics.listen}: "
                              f"{exc.strerror or exc} (is another mailbot or exporter "
                              "using that port?)") from None
        self.server = server

    def close(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()
