"""The daemon's /metrics and /healthz on real servers: Dovecot in, aiosmtpd out, a real scrape.

Time is a FixedClock started at the real now (Dovecot stamps INTERNALDATE with the real
time); thresholds are crossed by moving it, never by sleeping. What the tests wait for
is the daemon's own work (a mail accepted, a counter moved), with a timeout.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from prometheus_client.parser import text_string_to_metric_families

from factories import config_data, imap_mailbox, make_app, make_message, smtp_section
from mailbot.clock import FixedClock
from mailbot.config import config_from_dict
from mailbot.daemon import App, Daemon
from servers import free_port, imap_append, imap_append_many

pytestmark = pytest.mark.integration


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not _holds(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.1)


def _holds(condition: Callable[[], bool]) -> bool:
    try:
        return condition()
    except OSError:  # the endpoint is not listening yet
        return False


class Scraper:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = urllib.request.urlopen(f"{self.base}/metrics", timeout=5).read().decode()
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(text) for sample in family.samples}

    def value(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def health(self) -> tuple[int, dict[str, Any]]:
        try:
            answer = urllib.request.urlopen(f"{self.base}/healthz", timeout=5)
        except urllib.error.HTTPError as failing:
            return failing.code, json.loads(failing.read())
        return answer.status, json.loads(answer.read())


def observed_app(tmp_path: Path, account: Any, smtp: Any, clock: FixedClock,
                 **smtp_over: Any) -> tuple[App, Scraper]:
    port = free_port()
    data = config_data(tmp_path, mailboxes=[imap_mailbox(account, name="mb0", poll_interval="1h")],
                       smtp=smtp_section(smtp, **smtp_over),
                       metrics={"enabled": True, "listen": f"127.0.0.1:{port}",
                                "imap_unreachable_after": "5m"})
    return make_app(config_from_dict(data, source=tmp_path / "mailbot.toml"), clock), Scraper(port)


@pytest.fixture
def running() -> Iterator[Callable[[App], Daemon]]:
    """Start daemons in threads; stop and join them at the end of the test."""
    started: list[tuple[Daemon, threading.Thread]] = []

    def start(app: App) -> Daemon:
        daemon = Daemon(app)
        thread = threading.Thread(target=lambda: asyncio.run(daemon.run(install_signals=False)),
                                  daemon=True)
        thread.start()
        started.append((daemon, thread))
        return daemon

    yield start
    for daemon, thread in started:
        daemon.request_stop()
        thread.join(20)
        assert not thread.is_alive()


def now() -> FixedClock:
    return FixedClock(datetime.now(timezone.utc))


def test_scrape_counts_messages_acks_breaches_and_lag(tmp_path: Path, imap_account: Any,
                                                      smtp_server: Any,
                                                      running: Callable[[App], Daemon]) -> None:
    # Two customers and an out-of-office: 2 stored customer messages, 1 auto-reply, 2 acks,
    # an empty outbox; ten days later both cases breached both deadlines (4 escalations).
    clock = now()
    app, scrape = observed_app(tmp_path, imap_account, smtp_server, clock)
    imap_append_many(imap_account, [
        make_message(),
        make_message(sender="bob@customer.test", message_id="<bob@customer.test>"),
        make_message(sender="robot@customer.test", message_id="<ooo@customer.test>",
                     subject="Out of office", Auto_Submitted="auto-replied"),
    ])
    daemon = running(app)
    smtp_server.wait_for(2, timeout=30)
    wait_until(lambda: scrape.value("mailbot_acks_sent_total") == 2, what="2 acks counted")
    seen = scrape.metrics()
    assert seen[("mailbot_messages_processed_total",
                 (("classification", "customer"), ("outcome", "stored")))] == 2
    assert seen[("mailbot_messages_processed_total",
                 (("classification", "auto_reply"), ("outcome", "stored")))] == 1
    assert seen[("mailbot_message_processing_seconds_count", ())] == 3
    assert seen[("mailbot_mails_sent_total", (("kind", "ack"),))] == 2
    assert seen[("mailbot_outbox_depth", ())] == 0
    assert seen[("mailbot_outbox_oldest_age_seconds", ())] == 0
    assert seen[("mailbot_imap_up", (("mailbox", "mb0"),))] == 1
    assert not any(name in ("mailbot_smtp_errors_total", "mailbot_imap_errors_total",
                            "mailbot_sla_breaches_total") for name, _labels in seen)
    status, body = scrape.health()
    assert status == 200 and body["status"] == "ok" and body["mailboxes"] == {"mb0": "up"}

    clock.advance(days=10)
    daemon._notify()  # the sender would look by itself within 30 s; the test does not wait
    wait_until(lambda: scrape.value("mailbot_sla_breaches_total", deadline="detailed") == 2,
               what="the detailed escalations")
    assert scrape.value("mailbot_sla_breaches_total", deadline="preliminary") == 2
    assert scrape.value("mailbot_scheduler_lag_seconds") > 5 * 86400  # fired days after due
    assert scrape.value("mailbot_scheduler_overdue_seconds") == 0  # ... and nothing left due


def test_healthz_names_imap_after_dovecot_stays_down(tmp_path: Path, dovecot: Any,
                                                     imap_account: Any, smtp_server: Any,
                                                     running: Callable[[App], Daemon]) -> None:
    # Dovecot stopped: errors are counted and imap_up drops at once, but /healthz fails only
    # once the outage is longer than imap_unreachable_after (5m), naming the mailbox; when
    # Dovecot is back the watcher reconnects and /healthz is fine again.
    clock = now()
    app, scrape = observed_app(tmp_path, imap_account, smtp_server, clock)
    running(app)
    wait_until(lambda: scrape.value("mailbot_imap_up", mailbox="mb0") == 1, what="IMAP up")
    assert scrape.health()[0] == 200
    dovecot.stop()
    try:
        wait_until(lambda: scrape.value("mailbot_imap_up", mailbox="mb0") == 0, what="IMAP down")
        assert scrape.value("mailbot_imap_errors_total", mailbox="mb0", stage="fetch") >= 1
        assert scrape.health()[0] == 200  # a blip is not an outage
        clock.advance(minutes=6)
        status, body = scrape.health()
        assert status == 503 and body["status"] == "failing"
        (reason,) = body["reasons"]
        assert reason.startswith("imap unreachable: mailbox mb0 failing for 0:06:")
        assert "imap_unreachable_after = 5m" in reason
    finally:
        dovecot.start()
    wait_until(lambda: scrape.health()[0] == 200, timeout=60, what="the reconnect")
    imap_append(imap_account, make_message())
    smtp_server.wait_for(1, timeout=30)


def test_healthz_names_the_outbox_when_smtp_is_down(tmp_path: Path, imap_account: Any,
                                                    smtp_server: Any,
                                                    running: Callable[[App], Daemon]) -> None:
    # The SMTP sink down: the ack waits, depth 1, temporary errors counted; past
    # [smtp] stuck_warning_after (10m) /healthz answers 503 "outbox stuck".
    smtp_server.stop()
    clock = now()
    app, scrape = observed_app(tmp_path, imap_account, smtp_server, clock,
                               stuck_warning_after="10m")
    imap_append(imap_account, make_message())
    running(app)
    wait_until(lambda: scrape.value("mailbot_smtp_errors_total", type="temporary") >= 1,
               what="a failed send")
    assert scrape.value("mailbot_outbox_depth") == 1
    assert scrape.health()[0] == 200
    clock.advance(minutes=11)
    assert scrape.value("mailbot_outbox_oldest_age_seconds") >= 660
    status, body = scrape.health()
    assert status == 503 and body["outbox"]["depth"] == 1
    (reason,) = body["reasons"]
    assert reason.startswith("outbox stuck: 1 mail(s) waiting, the oldest for 0:11:")
    assert f"127.0.0.1:{smtp_server.port}" in reason


def test_run_with_the_metrics_port_taken_is_one_line_naming_the_key(tmp_path: Path) -> None:
    # `mailbot run` when something else listens on [metrics] listen: exit 2, one line, no
    # traceback, before any mailbox is touched.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data = config_data(tmp_path, metrics={"enabled": True, "listen": f"127.0.0.1:{port}"})
        path = tmp_path / "mailbot.toml"
        path.write_text(tomli_w.dumps(data))
        make_app(config_from_dict(data, source=path))  # migrate the schema
        process = subprocess.run([sys.executable, "-m", "mailbot", "--config", str(path), "run"],
                                 capture_output=True, text=True, timeout=60,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.returncode == 2, process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in process.stderr
    assert lines[0].startswith(f"mailbot: bad config: {path}: metrics.listen: cannot listen on "
                               f"127.0.0.1:{port}: Address already in use")
