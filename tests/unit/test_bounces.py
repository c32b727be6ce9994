"""Bounces: read the report, find the mail it is about, record it on that case, suppress the address."""

from __future__ import annotations

import email
from email.policy import default
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from factories import T0, deliver, make_app, make_config, make_message
from mailbot.bounces import DeliveryReport, read_report
from mailbot.cli import cli
from mailbot.daemon import App, run_once
from mailbot.db.models import Case, Event, Message, Outbox, Suppression
from mailbot.parse import parse

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
FLANKER_BOUNCES = CORPUS / "flanker" / "tests" / "fixtures" / "messages" / "bounce"


@pytest.fixture
def app(tmp_path: Path) -> App:
    return make_app(make_config(tmp_path))


def inbox(app: App) -> Path:
    assert app.config.mailboxes[0].path is not None
    return Path(app.config.mailboxes[0].path)


def sent(app: App) -> list[email.message.EmailMessage]:
    assert app.config.smtp.directory is not None
    return [email.message_from_bytes(p.read_bytes(), policy=default)  # type: ignore[misc]
            for p in sorted(Path(app.config.smtp.directory).glob("*.eml"))]


def acks_sent(app: App) -> int:
    return sum(1 for m in sent(app) if m["X-Mailbot-Kind"] == "ack")


def dsn(original_id: str, recipient: str = "alice@customer.test", status: str = "5.1.1",
        action: str = "failed", headers_part: str = "text/rfc822-headers",
        message_id: str = "<dsn1@mx.customer.test>") -> bytes:
    """An RFC 3464 report as Postfix writes it, about the mail with ``original_id``."""
    original = (f"From: Support <support@example.test>\r\nTo: {recipient}\r\n"
                f"Subject: Re: Printer on fire [SUP-1]\r\nMessage-ID: {original_id}\r\n")
    body = original + ("\r\nthe body\r\n" if headers_part == "message/rfc822" else "")
    return (
        "From: MAILER-DAEMON@mx.customer.test (Mail Delivery System)\r\n"
        "To: support@example.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: {message_id}\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.customer.test\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: Recipient address rejected\r\n\r\n"
        f"--B\r\nContent-Type: {headers_part}\r\n\r\n{body}\r\n--B--\r\n"
    ).encode()


def acked(app: App) -> str:
    """Open SUP-1 with an acknowledgement; returns the ack's Message-ID."""
    deliver(inbox(app), make_message(), "a")
    run_once(app)
    (ack,) = [m for m in sent(app) if m["X-Mailbot-Kind"] == "ack"]
    return str(ack["Message-ID"])


def events(app: App, kind: str) -> list[Event]:
    with app.db.session() as session:
        return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


@pytest.mark.parametrize(("name", "recipient", "status", "delayed"), [
    ("mailbox-full.eml", "user@aol.com", "5.2.2", False),
    ("zed.eml", "asdfasdfasdfasdfasdfasdfewrqertrtyrthsfgdfgadfqeadvxzvz@gmail.com", "5.1.1", False),
    ("no-mx.eml", "user@example.com", "4.4.4", True),
    ("gmail-invalid-address.eml", "awfawfawfawfawfaw@someserverhere.com", "5.1.0", False),
])
def test_real_bounces_are_read(name: str, recipient: str, status: str, delayed: bool) -> None:
    # Standard and free-text bounces from real servers give the recipient, the status and delay.
    path = FLANKER_BOUNCES / name
    if not path.is_file():
        pytest.skip(f"corpus file missing: {path}")
    raw = path.read_bytes()
    report = read_report(raw, parse(raw), "example.test")
    line = next(r for r in report.recipients if r.recipient == recipient)
    assert (line.status, line.delayed) == (status, delayed)


def test_original_id_found_in_attached_headers_and_free_text() -> None:
    # The reported Message-ID comes from the attached original, else from our id shape in the text.
    raw = dsn("<sup-1.ack.0123456789abcdef@example.test>")
    assert read_report(raw, parse(raw), "example.test").original_ids[0] == \
        "<sup-1.ack.0123456789abcdef@example.test>"
    text = make_message(sender="MAILER-DAEMON@mx.test", subject="failure notice",
                        body="Hi. This is the qmail-send program.\n<alice@customer.test>:\n"
                             "Sorry, no mailbox here by that name. (#5.1.1)\n--- Below this line "
                             "is a copy of the message.\nMessage-ID: "
                             "<sup-1.ack.0123456789abcdef@example.test>\n")
    report = read_report(text, parse(text), "example.test")
    assert "<sup-1.ack.0123456789abcdef@example.test>" in report.original_ids
    assert report.recipients[0].status == "5.1.1" and report.recipients[0].hard


def test_unreadable_report_never_raises() -> None:
    # A report whose structure is garbage still yields a (mostly empty) report, not an exception.
    raw = (b"From: postmaster@x.test\r\nContent-Type: multipart/report; boundary=q\r\n\r\n"
           b"--q\r\nContent-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n"
           b"\r\n!!!!\r\n--q--\r\n")
    assert isinstance(read_report(raw, parse(raw), "example.test"), DeliveryReport)


def test_hard_bounce_recorded_on_case_and_suppresses_address(app: App) -> None:
    # A 5.1.1 report on our ack lands on SUP-1, opens no case, and blocks mail to that address.
    ack_id = acked(app)
    deliver(inbox(app), dsn(ack_id), "b")
    report = run_once(app)
    outcome = report.drained[0].outcomes[0]
    assert (outcome.status, outcome.classification, outcome.case_token) == (
        "stored", "bounce", "[SUP-1]")
    assert not outcome.new_case and not outcome.ack_queued
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 1
        bounce = session.scalar(select(Message).where(Message.classification == "bounce"))
        assert bounce is not None and bounce.case_id == 1
        suppression = session.scalar(select(Suppression))
        assert suppression is not None and suppression.email == "alice@customer.test"
        assert suppression.until == T0 + app.config.loop_protection.bounce_suppress_td
    (failed,) = events(app, "delivery_failed")
    assert failed.detail["recipient"] == "alice@customer.test"
    assert failed.detail["status"] == "5.1.1"
    assert failed.detail["reported_message_id"] == ack_id
    assert "550 5.1.1" in failed.detail["diagnostic"]
    # The operator sees it in `cases show`.
    config_path = Path(str(app.config.source))
    import tomli_w

    from factories import config_data

    config_path.write_text(tomli_w.dumps(config_data(config_path.parent)))
    out = CliRunner().invoke(cli, ["--config", str(config_path), "cases", "show", "SUP-1"])
    assert out.exit_code == 0, out.output
    assert "delivery_failed" in out.output
    assert "alice@customer.test failed: 5.1.1" in out.output


def test_suppressed_address_gets_no_more_mail(app: App) -> None:
    # After a hard bounce, a new case for the same address queues an ack that is failed, not sent.
    ack_id = acked(app)
    deliver(inbox(app), dsn(ack_id), "b")
    run_once(app)
    deliver(inbox(app), make_message(subject="another thing", message_id="<m9@customer.test>"),
            "c")
    run_once(app)
    assert acks_sent(app) == 1
    with app.db.session() as session:
        rows = list(session.scalars(select(Outbox).where(Outbox.kind == "ack").order_by(Outbox.id)))
    assert [r.status for r in rows] == ["sent", "failed"]
    assert rows[1].last_error and "bounced hard" in rows[1].last_error
    (event,) = events(app, "send_suppressed")
    assert "alice@customer.test" in event.detail["reason"]


def test_suppression_expires(app: App) -> None:
    # Once bounce_suppress has passed, mail to the address goes out again.
    ack_id = acked(app)
    deliver(inbox(app), dsn(ack_id), "b")
    run_once(app)
    app.clock.advance(days=8)  # type: ignore[attr-defined]
    deliver(inbox(app), make_message(subject="back again", message_id="<m10@customer.test>",
                                     date=T0), "c", at=app.clock.now())
    run_once(app)
    assert acks_sent(app) == 2


def test_delayed_report_is_recorded_without_suppression(app: App) -> None:
    # "Action: delayed" (4.x.x) is a delivery_delayed event; mail to the address is not blocked.
    ack_id = acked(app)
    deliver(inbox(app), dsn(ack_id, status="4.4.7", action="delayed",
                            headers_part="message/rfc822"), "b")
    run_once(app)
    (delayed,) = events(app, "delivery_delayed")
    assert delayed.detail["status"] == "4.4.7"
    assert not events(app, "delivery_failed")
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_free_text_bounce_matched_by_our_message_id_in_body(app: App) -> None:
    # A qmail-style text bounce naming our ack only in its body is still put on SUP-1.
    ack_id = acked(app)
    text = make_message(sender="MAILER-DAEMON@mx.customer.test", subject="failure notice",
                        message_id="<q@mx.customer.test>",
                        body=f"<alice@customer.test>:\nSorry, no mailbox here by that name. "
                             f"(#5.1.1)\n--- copy:\nMessage-ID: {ack_id}\n")
    deliver(inbox(app), text, "b")
    outcome = run_once(app).drained[0].outcomes[0]
    assert (outcome.classification, outcome.case_token) == ("bounce", "[SUP-1]")
    (failed,) = events(app, "delivery_failed")
    assert failed.detail["status"] == "5.1.1"


def test_bounce_about_unknown_mail_opens_no_case(app: App) -> None:
    # A bounce about mail we never sent is recorded, without a case and without an answer.
    deliver(inbox(app), dsn("<someone-else@elsewhere.test>"), "a")
    outcome = run_once(app).drained[0].outcomes[0]
    assert (outcome.status, outcome.classification, outcome.case_token) == ("stored", "bounce",
                                                                           None)
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 0
        assert session.scalar(select(func.count()).select_from(Outbox)) == 0


def test_report_without_status_code_does_not_suppress(app: App) -> None:
    # A postmaster's free-text answer on our ack, with no status code, is recorded but blocks nobody.
    ack_id = acked(app)
    deliver(inbox(app), make_message(sender="postmaster@customer.test", subject="Re: your mail",
                                     message_id="<pm@customer.test>", In_Reply_To=ack_id,
                                     body="We received your message and will read it soon.\n"),
            "b")
    outcome = run_once(app).drained[0].outcomes[0]
    assert (outcome.classification, outcome.case_token) == ("bounce", "[SUP-1]")
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 0
