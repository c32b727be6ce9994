"""Metrics, mailbox reachability and /healthz without servers (SQLite, a Maildir, FixedClock)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from factories import T0, config_data, deliver, inbox_of, make_app, make_config, make_message
from mailbot.clock import FixedClock
from mailbot.config import config_from_dict
from mailbot.context import Delivery, Outcome
from mailbot.daemon import drain_mailbox
from mailbot.errors import ConfigError
from mailbot.observe.health import check_health
from mailbot.observe.metrics import Metrics
from mailbot.observe.processed import Processed
from mailbot.observe.reach import Reachability
from mailbot.observe.server import MetricsServer, make_app as make_http_app
from mailbot.outbox.worker import FlushReport
from mailbot.schedule.runner import TickReport


def test_metrics_config_defaults_and_validation(tmp_path: Path) -> None:
    # Off by default, loopback when on; a listen value that is not host:port names the key.
    metrics = make_config(tmp_path).metrics
    assert not metrics.enabled and metrics.address == ("127.0.0.1", 9464)
    assert metrics.imap_unreachable_td == timedelta(minutes=5)
    ipv6 = config_from_dict(config_data(tmp_path, metrics={"listen": "[::1]:9100"}),
                            source=tmp_path / "mailbot.toml")
    assert ipv6.metrics.address == ("::1", 9100)
    for bad in ("9464", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "::1:9464", ":9464",
                "127.0.0.1:http"):
        with pytest.raises(ConfigError) as caught:
            config_from_dict(config_data(tmp_path, metrics={"listen": bad}),
                             source=tmp_path / "mailbot.toml")
        assert caught.value.key == "metrics.listen", bad
    with pytest.raises(ConfigError) as caught:
        config_from_dict(config_data(tmp_path, metrics={"imap_unreachable_after": "soon"}),
                         source=tmp_path / "mailbot.toml")
    assert caught.value.key == "metrics.imap_unreachable_after"


def test_two_daemons_in_one_process_keep_their_own_numbers() -> None:
    # Private registries: a second Metrics neither collides nor shares counts.
    first, second = Metrics(), Metrics()
    first.flushed(FlushReport(sent_kinds=["ack"]))
    assert first.registry.get_sample_value("mailbot_acks_sent_total") == 1
    assert second.registry.get_sample_value("mailbot_acks_sent_total") == 0


def test_counters_follow_messages_flushes_and_ticks() -> None:
    # Per-message outcomes by classification, sent mail by kind, SMTP errors by type, SLA
    # breaches by deadline (escalations only), and the scheduler's lag.
    metrics = Metrics()
    get = metrics.registry.get_sample_value
    delivery = Delivery("support", "INBOX", 1, 7)
    for outcome in (Outcome("stored", classification="customer"),
                    Outcome("stored", classification="customer"),
                    Outcome("stored", classification="auto_reply"),
                    Outcome("quarantined", reason="parse: broken")):
        metrics.processed(Processed(delivery, outcome, 0.002, 0.010, 0.001))
    assert get("mailbot_messages_processed_total",
               {"classification": "customer", "outcome": "stored"}) == 2
    assert get("mailbot_messages_processed_total",
               {"classification": "unclassified", "outcome": "quarantined"}) == 1
    assert get("mailbot_message_processing_seconds_count") == 4
    assert get("mailbot_message_processing_seconds_sum") == pytest.approx(4 * 0.013)

    metrics.flushed(FlushReport(sent=["<a>", "<b>", "<c>"], deferred=2, failed=1,
                                sent_kinds=["ack", "manager_new_case", "ack"],
                                smtp_errors=["temporary", "temporary", "permanent"]))
    assert get("mailbot_acks_sent_total") == 2
    assert get("mailbot_mails_sent_total", {"kind": "manager_new_case"}) == 1
    assert get("mailbot_smtp_errors_total", {"type": "temporary"}) == 2
    assert get("mailbot_smtp_errors_total", {"type": "permanent"}) == 1

    due = T0.isoformat()
    metrics.ticked(TickReport(fired=[f"sla.reminder:1:preliminary:{due}",
                                     f"sla.escalation:1:preliminary:{due}",
                                     f"sla.escalation:2:detailed:{due}",
                                     f"sla.supervisor:1:preliminary:{due}"],
                              first_due=T0), T0 + timedelta(seconds=90))
    assert get("mailbot_sla_breaches_total", {"deadline": "preliminary"}) == 1
    assert get("mailbot_sla_breaches_total", {"deadline": "detailed"}) == 1
    assert get("mailbot_jobs_fired_total", {"kind": "sla.supervisor"}) == 1
    assert get("mailbot_scheduler_lag_seconds") == 90
    metrics.ticked(TickReport(), T0 + timedelta(hours=1))
    assert get("mailbot_scheduler_lag_seconds") == 0


def test_a_mailbox_is_down_from_its_first_failure_until_it_answers() -> None:
    # Repeated failures keep the outage's start; a success ends it; a silent IDLE is no outage.
    reach = Reachability()
    reach.reached("support", T0)
    limit = timedelta(minutes=5)
    assert reach.unreachable(T0 + timedelta(hours=2), limit) == []
    reach.failed("support", T0 + timedelta(hours=2), "ConnectionRefusedError: refused")
    reach.failed("support", T0 + timedelta(hours=2, minutes=4), "ConnectionRefusedError: again")
    assert reach.unreachable(T0 + timedelta(hours=2, minutes=5), limit) == []
    (down,) = reach.unreachable(T0 + timedelta(hours=2, minutes=6), limit)
    assert down.since == T0 + timedelta(hours=2) and down.error.endswith("again")
    reach.reached("support", T0 + timedelta(hours=3))
    assert reach.unreachable(T0 + timedelta(hours=9), limit) == []
    reach.failed("other", T0, "x")
    reach.forget("other")
    assert [r.mailbox for r in reach.snapshot()] == ["support"]


def test_healthz_fails_on_a_stuck_outbox_and_an_unreachable_mailbox(tmp_path: Path) -> None:
    # An ack queued but not sent is fine until [smtp] stuck_warning_after; then /healthz says
    # "outbox stuck". A mailbox failing longer than imap_unreachable_after is named too.
    clock = FixedClock(T0)
    app = make_app(make_config(tmp_path, smtp={"stuck_warning_after": "10m"}), clock)
    deliver(inbox_of(app), make_message(), "m1")
    drain_mailbox(app, app.config.mailboxes[0])  # queues the ack; nothing flushes it
    reach = Reachability()
    health = check_health(app.config, app.db, clock.now(), reach)
    assert health.ok and health.outbox_depth == 1
    clock.advance(minutes=11)
    reach.failed("support", clock.now(), "ConnectionRefusedError: [Errno 111] refused")
    health = check_health(app.config, app.db, clock.now(), reach)
    assert not health.ok and len(health.reasons) == 1
    assert health.reasons[0].startswith("outbox stuck: 1 mail(s) waiting, the oldest for 0:11:00")
    clock.advance(minutes=6)
    health = check_health(app.config, app.db, clock.now(), reach)
    assert [r.split(":")[0] for r in health.reasons] == ["outbox stuck", "imap unreachable"]
    assert "mailbox support failing for 0:06:00" in health.reasons[1]
    assert health.as_json()["status"] == "failing"


def test_endpoint_serves_metrics_healthz_and_404(tmp_path: Path) -> None:
    # The WSGI app over a real loopback socket: text exposition, JSON health, 404 otherwise.
    clock = FixedClock(T0)
    app = make_app(make_config(tmp_path), clock)
    metrics = Metrics(lambda: (app.db, clock))
    reach = Reachability()
    server = MetricsServer("127.0.0.1", 0, make_http_app(
        metrics.registry, lambda: check_health(app.config, app.db, clock.now(), reach)))
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert "mailbot_outbox_depth 0.0" in text and "mailbot_acks_sent_total 0.0" in text
        answer = urllib.request.urlopen(f"{base}/healthz", timeout=5)
        assert answer.status == 200 and json.loads(answer.read())["status"] == "ok"
        reach.failed("support", T0 - timedelta(hours=1), "OSError: down")
        with pytest.raises(urllib.error.HTTPError) as failing:
            urllib.request.urlopen(f"{base}/healthz", timeout=5)
        assert failing.value.code == 503
        assert "imap unreachable: mailbox support" in json.loads(failing.value.read())["reasons"][0]
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/nope", timeout=5)
        assert missing.value.code == 404
    finally:
        server.stop()
    with pytest.raises(OSError):  # stopped means the port is closed
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
