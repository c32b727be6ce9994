"""Managers by mail: assignment, notification, relay, commands and forgeries (Maildir harness)."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from factories import T0, deliver, make_app, make_config, make_message
from mailbot.daemon import App, run_once
from mailbot.db.models import Case, Event, Message, Participant

OLGA, IVAN = "olga@staff.test", "ivan@staff.test"


def manager_app(tmp_path: Path, **over: Any) -> App:
    (tmp_path / "secret").write_text("0123456789abcdef0123456789abcdef\n")
    settings: dict[str, Any] = {
        "managers": [{"email": OLGA, "name": "Olga", "timezone": "Europe/Kyiv"},
                     {"email": IVAN, "name": "Ivan Petrenko", "timezone": "Europe/Berlin"}],
        "organizations": [{"name": "Acme", "domains": ["acme.test"], "manager": "Ivan Petrenko",
                           "service_level": "extended", "timezone": "America/New_York"}],
        "service_levels": {"extended": {"calendar": "24x7", "timezone": "UTC"}},
        "security": {"secret_file": str(tmp_path / "secret")},
    }
    settings.update(over)
    return make_app(make_config(tmp_path, **settings))


def inbox(app: App) -> Path:
    assert app.config.mailboxes[0].path is not None
    return Path(app.config.mailboxes[0].path)


def outgoing(app: App) -> list[EmailMessage]:
    assert app.config.smtp.directory is not None
    files = sorted(Path(app.config.smtp.directory).glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    return [email.message_from_bytes(p.read_bytes(), policy=default)  # type: ignore[misc]
            for p in files]


def by_kind(app: App, kind: str) -> list[EmailMessage]:
    return [m for m in outgoing(app) if m["X-Mailbot-Kind"] == kind]


def body(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def events(app: App, kind: str) -> list[Event]:
    with app.db.session() as session:
        return list(session.scalars(select(Event).where(Event.kind == kind)))


def open_case(app: App, sender: str = "alice@customer.test", **kw: Any) -> EmailMessage:
    """A customer writes; returns the notification their manager got."""
    deliver(inbox(app), make_message(sender=sender, **kw), f"c-{sender}-{len(outgoing(app))}")
    run_once(app)
    return by_kind(app, "manager_new_case")[-1]


def manager_reply(notification: EmailMessage, text: str, sender: str = OLGA, *,
                  quote: bool = True, attach: bytes | None = None, **headers: str) -> bytes:
    """A reply as Outlook writes it: text on top, the notification quoted under From:/Sent:."""
    reply = EmailMessage()
    reply["From"] = sender
    reply["To"] = notification["Reply-To"]
    reply["Subject"] = "RE: " + str(notification["Subject"])
    reply["Message-ID"] = f"<reply-{abs(hash(text))}@staff.test>"
    reply["In-Reply-To"] = notification["Message-ID"]
    reply["References"] = notification["Message-ID"]
    for key, value in headers.items():
        del reply[key.replace("_", "-")]
        reply[key.replace("_", "-")] = value
    quoted = (f"\n\nFrom: Support <support@example.test>\nSent: Monday, November 23, 2026 10:00\n"
              f"To: {sender}\nSubject: {notification['Subject']}\n\n{body(notification)}"
              if quote else "")
    reply.set_content(text + quoted)
    if attach is not None:
        reply.add_attachment(attach, maintype="application", subtype="pdf", filename="plan.pdf")
    return bytes(reply)


def test_new_case_goes_to_round_robin_manager_with_signed_headers(tmp_path: Path) -> None:
    # Without an organization, managers take turns; the notification is signed and complete.
    app = manager_app(tmp_path)
    first = open_case(app, "a@customer.test", message_id="<a@c>")
    second = open_case(app, "b@customer.test", message_id="<b@c>", subject="Other")
    third = open_case(app, "c@customer.test", message_id="<c@c>", subject="Third")
    assert [first["To"], second["To"], third["To"]] == [OLGA, IVAN, OLGA]
    assert first["Reply-To"].startswith("support+sup-1.")
    assert first["Message-ID"].startswith("<sup-1.new.")
    assert first["Auto-Submitted"] == "auto-generated"
    text = body(first)
    assert "[SUP-1]" in text and "the printer is on fire" in text
    assert "(Europe/Kyiv)" in text  # deadlines in the manager's own zone


def test_organization_sets_manager_level_and_zone(tmp_path: Path) -> None:
    # A customer of Acme (by domain, subdomains included) gets Acme's manager, level and zone.
    app = manager_app(tmp_path)
    notification = open_case(app, "bob@eu.acme.test")
    assert notification["To"] == IVAN
    with app.db.session() as session:
        case = session.scalar(select(Case))
        assert case is not None
        assert (case.manager_email, case.service_level, case.timezone, case.timezone_source) == (
            IVAN, "extended", "America/New_York", "organization")
        assert case.preliminary_due is not None
        assert (case.preliminary_due - case.opened_at).total_seconds() == 24 * 3600


def test_manager_reply_is_relayed_without_the_quote(tmp_path: Path) -> None:
    # The manager's answer reaches the customer and CCs from support@, threaded, quote removed.
    app = manager_app(tmp_path)
    notification = open_case(app, Cc="carol@customer.test")
    deliver(inbox(app), manager_reply(notification, "Hello Alice,\nthe fix is deployed.\nOlga",
                                      attach=b"%PDF-plan"), "r")
    run_once(app)
    (relay,) = by_kind(app, "relay")
    assert relay["From"].addresses[0].addr_spec == "support@example.test"
    assert relay["To"] == "alice@customer.test" and relay["Cc"] == "carol@customer.test"
    assert relay["Subject"] == "Re: Printer on fire [SUP-1]"
    assert relay["In-Reply-To"] == "<m1@customer.test>"
    assert relay["Auto-Submitted"] is None  # a person's answer, not an automatic one
    text = body(relay)
    assert "the fix is deployed" in text
    assert "New case" not in text and "First answer due" not in text and "Sent:" not in text
    (attachment,) = list(relay.iter_attachments())
    assert attachment.get_filename() == "plan.pdf" and attachment.get_content() == b"%PDF-plan"
    with app.db.session() as session:
        case = session.scalar(select(Case))
        assert case is not None and case.first_response_at == T0
    assert len(events(app, "preliminary_answer")) == 1


def test_note_never_reaches_the_customer(tmp_path: Path) -> None:
    # #note is recorded on the case and nothing goes to the customer.
    app = manager_app(tmp_path)
    notification = open_case(app)
    deliver(inbox(app), manager_reply(notification, "#note he owes us money\ncheck first"), "r")
    run_once(app)
    assert by_kind(app, "relay") == []
    (note,) = events(app, "note")
    assert note.detail["text"].startswith("he owes us money")
    assert all("owes us money" not in body(m) for m in outgoing(app) if m["To"] != OLGA)


def test_unknown_command_relays_nothing_and_tells_the_manager(tmp_path: Path) -> None:
    # "#nte" (a typo of #note) must not send the internal text: the manager gets an error mail.
    app = manager_app(tmp_path)
    notification = open_case(app)
    deliver(inbox(app), manager_reply(notification, "#nte he owes us money"), "r")
    run_once(app)
    assert by_kind(app, "relay") == []
    (error,) = by_kind(app, "command_error")
    assert error["To"] == OLGA and "unknown command #nte" in body(error)
    assert "NOT sent" in body(error)


def test_close_detailed_and_assign(tmp_path: Path) -> None:
    # #detailed marks the detailed answer, #close closes, #assign hands over and notifies.
    app = manager_app(tmp_path)
    notification = open_case(app)
    deliver(inbox(app), manager_reply(notification, "#detailed\n#close\nHere is the full answer.",
                                      Message_ID="<r1@staff.test>"), "r1")
    run_once(app)
    with app.db.session() as session:
        case = session.scalar(select(Case))
        assert case is not None and case.status == "closed" and case.detailed_at == T0
    deliver(inbox(app), manager_reply(notification, "#reopen\n#assign ivan@staff.test",
                                      Message_ID="<r2@staff.test>"), "r2")
    run_once(app)
    with app.db.session() as session:
        case = session.scalar(select(Case))
        assert case is not None and case.status == "open" and case.manager_email == IVAN
    assert by_kind(app, "manager_new_case")[-1]["To"] == IVAN
    assert len(by_kind(app, "relay")) == 1  # the command-only reply relays nothing


def test_forged_manager_mail_is_customer_mail(tmp_path: Path) -> None:
    # From: the manager without proof: handled as customer mail, flagged, its #close ignored.
    app = manager_app(tmp_path)
    open_case(app)
    deliver(inbox(app), make_message(sender=OLGA, subject="Re: Printer on fire [SUP-1]",
                                     body="#close\nplease ignore", message_id="<f@evil.test>",
                                     In_Reply_To="<m1@customer.test>"), "f")
    run_once(app)
    assert by_kind(app, "relay") == []
    (flag,) = events(app, "staff_auth_failed")
    assert "From: alone is not proof" in flag.detail["reason"]
    with app.db.session() as session:
        case = session.scalar(select(Case))
        assert case is not None and case.status == "open"
        forged = session.scalar(select(Message).where(Message.message_id == "<f@evil.test>"))
        assert forged is not None and forged.classification == "customer"


def test_signature_of_another_case_cannot_be_redirected_by_token(tmp_path: Path) -> None:
    # A reply proven for SUP-1 lands on SUP-1 even if its subject names SUP-2.
    app = manager_app(tmp_path)
    first = open_case(app, "a@customer.test", message_id="<a@c>")
    open_case(app, "b@customer.test", message_id="<b@c>", subject="Other")
    deliver(inbox(app), manager_reply(first, "Answer for A", Subject="Re: [SUP-2] Other"), "r")
    run_once(app)
    (relay,) = by_kind(app, "relay")
    assert relay["To"] == "a@customer.test" and "[SUP-1]" in relay["Subject"]


def test_customer_follow_up_reaches_the_manager(tmp_path: Path) -> None:
    # A later customer message goes to the manager as an update; a closed case reopens.
    app = manager_app(tmp_path)
    notification = open_case(app)
    deliver(inbox(app), manager_reply(notification, "#close"), "close")
    run_once(app)
    deliver(inbox(app), make_message(subject="Re: Printer on fire [SUP-1]",
                                     body="It is on fire again.",
                                     message_id="<m2@customer.test>"), "m2")
    run_once(app)
    (update,) = by_kind(app, "manager_update")
    assert update["To"] == OLGA and "It is on fire again." in body(update)
    assert update["Reply-To"].startswith("support+sup-1.")
    assert len(events(app, "reopened")) == 1


def test_empty_reply_relays_nothing(tmp_path: Path) -> None:
    # A reply that is only the quoted notification relays nothing and tells the manager.
    app = manager_app(tmp_path)
    notification = open_case(app)
    deliver(inbox(app), manager_reply(notification, ""), "r")
    run_once(app)
    assert by_kind(app, "relay") == []
    assert "nothing to relay" in body(by_kind(app, "command_error")[0])


def test_config_requires_secret_with_managers(tmp_path: Path) -> None:
    # Managers without a security secret cannot be authenticated: the config says so.
    from mailbot.errors import ConfigError

    with pytest.raises(ConfigError, match="secret_env or secret_file is required"):
        make_config(tmp_path, managers=[{"email": OLGA}])
    with pytest.raises(ConfigError, match="is not the email or name"):
        make_config(tmp_path, security={"secret_env": "X"}, managers=[{"email": OLGA}],
                    organizations=[{"name": "A", "domains": ["a.test"], "manager": "nobody"}])


def test_cc_participants_recorded(tmp_path: Path) -> None:
    # A colleague in Cc becomes a participant and may write to the case later.
    app = manager_app(tmp_path)
    open_case(app, Cc="Carol <carol@customer.test>")
    with app.db.session() as session:
        roles = {p.email: p.role for p in session.scalars(select(Participant))}
    assert roles == {"alice@customer.test": "customer", "carol@customer.test": "cc"}


def test_outlook_web_html_only_reply(tmp_path: Path) -> None:
    # An HTML-only reply (Outlook on the web) is relayed without the quoted notification.
    app = manager_app(tmp_path)
    notification = open_case(app)
    internal = body(notification).replace("\n", "<br>\n")
    html = ("<html><body><div>Hello Alice,<br>the fix is live.<br>Olga</div>"
            '<hr style="display:inline-block;width:98%"><div id="divRplyFwdMsg" dir="ltr">'
            "<b>From:</b> Support &lt;support@example.test&gt;<br><b>Sent:</b> Monday, "
            f"November 23, 2026 10:00<br><b>To:</b> Olga<br><b>Subject:</b> "
            f"{notification['Subject']}</div><div>{internal}</div></body></html>")
    reply = EmailMessage()
    reply["From"] = OLGA
    reply["To"] = notification["Reply-To"]
    reply["Subject"] = "RE: " + str(notification["Subject"])
    reply["Message-ID"] = "<owa@staff.test>"
    reply["In-Reply-To"] = notification["Message-ID"]
    reply.set_content(html, subtype="html")
    deliver(inbox(app), bytes(reply), "owa")
    run_once(app)
    (relay,) = by_kind(app, "relay")
    text = body(relay)
    assert "the fix is live" in text
    assert "New case" not in text and "is assigned to you" not in text


def test_bounce_of_a_relay_tells_the_manager(tmp_path: Path) -> None:
    # A hard bounce of our relay is recorded on the case and the manager gets a short notice.
    app = manager_app(tmp_path)
    notification = open_case(app)
    deliver(inbox(app), manager_reply(notification, "The answer."), "r")
    run_once(app)
    (relay,) = by_kind(app, "relay")
    dsn = (
        "From: MAILER-DAEMON@mx.customer.test\r\nTo: support@example.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn1@mx.customer.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
        "boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system."
        "\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; "
        "mx.customer.test\r\n\r\nFinal-Recipient: rfc822; alice@customer.test\r\nAction: failed"
        "\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--B\r\n"
        f"Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: {relay['Message-ID']}\r\n"
        "\r\n--B--\r\n").encode()
    deliver(inbox(app), dsn, "dsn")
    run_once(app)
    (notice,) = by_kind(app, "delivery_failure")
    assert notice["To"] == OLGA and "5.1.1" in body(notice)
    assert "alice@customer.test" in str(notice["Subject"])
    assert len(events(app, "delivery_failed")) == 1

