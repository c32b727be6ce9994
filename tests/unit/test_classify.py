"""classify: every loop-protection marker of issue 7, one table row each."""

from __future__ import annotations


import pytest

from factories import make_config, make_message
from mailbot.classify import RULES, classify
from mailbot.config import Config
from mailbot.message import Disposition
from mailbot.parse import parse

# (headers to add, sender, expected kind, expected disposition, text expected in the reason)
CASES: list[tuple[dict[str, str], str, str, Disposition, str]] = [
    ({}, "alice@customer.test", "customer", Disposition.ACKNOWLEDGE, "no rule matched"),
    ({"Auto-Submitted": "no"}, "alice@customer.test", "customer", Disposition.ACKNOWLEDGE, ""),
    ({"Auto-Submitted": "No"}, "alice@customer.test", "customer", Disposition.ACKNOWLEDGE, ""),
    ({"Auto-Submitted": "auto-replied"}, "a@c.test", "auto_reply", Disposition.RECORD_ONLY,
     "Auto-Submitted: auto-replied"),
    ({"Auto-Submitted": "auto-generated"}, "a@c.test", "auto_reply", Disposition.RECORD_ONLY,
     "auto-generated"),
    ({"Auto-Submitted": "auto-notified; owner-email=x@c.test"}, "a@c.test", "auto_reply",
     Disposition.RECORD_ONLY, "auto-notified"),
    ({"Precedence": "bulk"}, "a@c.test", "auto_reply", Disposition.RECORD_ONLY, "bulk"),
    ({"Precedence": "junk"}, "a@c.test", "auto_reply", Disposition.RECORD_ONLY, "junk"),
    ({"Precedence": "list"}, "a@c.test", "auto_reply", Disposition.RECORD_ONLY, "list"),
    ({"Precedence": "auto_reply"}, "a@c.test", "auto_reply", Disposition.RECORD_ONLY,
     "auto_reply"),
    ({"Precedence": "first-class"}, "a@c.test", "customer", Disposition.ACKNOWLEDGE, ""),
    ({"List-Id": "<news.list.test>"}, "n@list.test", "auto_reply", Disposition.RECORD_ONLY,
     "list-id"),
    ({"List-Unsubscribe": "<mailto:u@list.test>"}, "n@list.test", "auto_reply",
     Disposition.RECORD_ONLY, "list-unsubscribe"),
    ({"X-Autoreply": "yes"}, "a@c.test", "auto_reply", Disposition.RECORD_ONLY, "x-autoreply"),
    ({"X-Autorespond": "Out of office"}, "a@c.test", "auto_reply", Disposition.RECORD_ONLY,
     "x-autorespond"),
    ({"X-Auto-Response-Suppress": "All"}, "a@c.test", "auto_reply", Disposition.RECORD_ONLY,
     "x-auto-response-suppress"),
    ({"X-Auto-Response-Suppress": ""}, "a@c.test", "customer", Disposition.ACKNOWLEDGE, ""),
    ({"X-MS-Exchange-Generated-Message-Source": "Mailbox Rules Agent"}, "a@c.test",
     "auto_reply", Disposition.RECORD_ONLY, "x-ms-exchange-generated-message-source"),
    ({"Return-Path": "<>"}, "a@c.test", "auto_reply", Disposition.RECORD_ONLY, "null sender"),
    ({"Return-Path": "<a@c.test>"}, "a@c.test", "customer", Disposition.ACKNOWLEDGE, ""),
    ({}, "MAILER-DAEMON@mx.c.test", "bounce", Disposition.RECORD_ONLY, "mailer-daemon"),
    ({}, "postmaster@c.test", "bounce", Disposition.RECORD_ONLY, "postmaster"),
    ({}, "support@example.test", "own", Disposition.DROP, "own address"),
    ({}, "Support <SUPPORT@Example.Test>", "own", Disposition.DROP, "own address"),
    ({"X-Loop": "support@example.test"}, "a@c.test", "own", Disposition.DROP, "X-Loop"),
    ({"X-Loop": "<Support@example.test>"}, "a@c.test", "own", Disposition.DROP, "X-Loop"),
    ({"X-Loop": "helpdesk@other.test"}, "a@c.test", "customer", Disposition.ACKNOWLEDGE, ""),
    # Own mail wins over every other marker; a bounce wins over the null sender.
    ({"Auto-Submitted": "auto-replied"}, "support@example.test", "own", Disposition.DROP, ""),
    ({"Return-Path": "<>"}, "mailer-daemon@mx.c.test", "bounce", Disposition.RECORD_ONLY, ""),
]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Config:
    return make_config(tmp_path_factory.mktemp("classify"))


@pytest.mark.parametrize(("headers", "sender", "kind", "disposition", "reason"), CASES,
                         ids=[f"{i}-{c[2]}" for i, c in enumerate(CASES)])
def test_marker_table(config: Config, headers: dict[str, str], sender: str, kind: str,
                      disposition: Disposition, reason: str) -> None:
    # Each marker gives the expected kind and disposition, and the reason names the marker.
    raw = make_message(sender=sender, **{k.replace("-", "_"): v for k, v in headers.items()})
    verdict = classify(parse(raw), config)
    assert (verdict.kind, verdict.disposition) == (kind, disposition)
    assert reason.lower() in verdict.reason.lower()


def test_rfc3464_report_is_a_bounce(config: Config) -> None:
    # A multipart/report delivery-status from an ordinary-looking sender is still a bounce.
    raw = (b"From: relay@c.test\r\nTo: support@example.test\r\nSubject: failure\r\n"
           b"Message-ID: <r@c.test>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
           b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n"
           b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; c.test\r\n\r\n"
           b"Final-Recipient: rfc822; x@y.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n")
    verdict = classify(parse(raw), config)
    assert (verdict.kind, verdict.disposition) == ("bounce", Disposition.RECORD_ONLY)


def test_one_module_per_rule() -> None:
    # Every rule lives in its own module, so each marker has exactly one home.
    modules = [rule.__module__ for rule, _kind, _disposition in RULES]
    assert len(modules) == len(set(modules)) >= 7
