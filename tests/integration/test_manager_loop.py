"""The whole manager loop on real servers: customer → notification → manager reply → relay.

Each manager reply is written the way a real client writes it, quoting the real
notification the manager received from the SMTP server.
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from factories import config_data, imap_mailbox, make_app, make_message, smtp_section
from mailbot.clock import SystemClock
from mailbot.config import config_from_dict
from mailbot.daemon import App, run_once
from servers import imap_append

pytestmark = pytest.mark.integration

OLGA = "olga@staff.test"


def _quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.splitlines())


def outlook(n: EmailMessage, text: str, body: str) -> str:
    return (f"{text}\n\nFrom: Support <support@example.test>\nSent: Monday, November 23, 2026 "
            f"10:00 AM\nTo: Olga <{OLGA}>\nSubject: {n['Subject']}\n\n{body}")


def outlook_ru(n: EmailMessage, text: str, body: str) -> str:
    return (f"{text}\n\nОт: Support <support@example.test>\nОтправлено: 23 ноября 2026 г. 10:00"
            f"\nКому: Olga <{OLGA}>\nТема: {n['Subject']}\n\n{body}")


def gmail_uk(n: EmailMessage, text: str, body: str) -> str:
    return (f"{text}\n\nпн, 23 лист. 2026 р. о 10:00 Support <support@example.test> пише:\n\n"
            f"{_quote(body)}")


def thunderbird_de(n: EmailMessage, text: str, body: str) -> str:
    return f"{text}\n\nAm 23.11.26 um 10:00 schrieb Support:\n{_quote(body)}"


def apple_mail(n: EmailMessage, text: str, body: str) -> str:
    return (f"{text}\n\nSent from my iPhone\n\n> On 23 Nov 2026, at 10:00, Support "
            f"<support@example.test> wrote:\n> \n{_quote(body)}")


def gmail_ru(n: EmailMessage, text: str, body: str) -> str:
    return f"{text}\n\nпн, 23 нояб. 2026 г. в 10:00, Support <support@example.test>:\n\n" \
           f"{_quote(body)}"


CLIENTS = {"outlook": outlook, "outlook-ru": outlook_ru, "gmail-uk": gmail_uk,
           "thunderbird-de": thunderbird_de, "apple-mail-iphone": apple_mail,
           "gmail-ru": gmail_ru}


def app_for(tmp_path: Path, account: Any, smtp: Any) -> App:
    (tmp_path / "secret").write_text("s" * 32)
    data = config_data(
        tmp_path, mailboxes=[imap_mailbox(account)], smtp=smtp_section(smtp),
        managers=[{"email": OLGA, "name": "Olga"}],
        security={"secret_file": str(tmp_path / "secret")},
    )
    # Dovecot stamps APPENDed mail with the real time: run on the real clock too.
    return make_app(config_from_dict(data, source=tmp_path / "mailbot.toml"), SystemClock())


def reply_to(notification: EmailMessage, body: str, *, use_references: bool = True) -> bytes:
    reply = EmailMessage()
    reply["From"] = f"Olga <{OLGA}>"
    reply["To"] = notification["Reply-To"]
    reply["Subject"] = "Re: " + str(notification["Subject"])
    reply["Message-ID"] = "<olga-reply@staff.test>"
    if use_references:
        reply["In-Reply-To"] = notification["Message-ID"]
        reply["References"] = notification["Message-ID"]
    reply.set_content(body)
    return bytes(reply)


def plain(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_reply_from_each_client_reaches_customer_without_internal_text(
        client: str, tmp_path: Path, imap_account: Any, smtp_server: Any) -> None:
    # Customer mail → ack + notification; the manager's reply (as the client writes it) → relay.
    app = app_for(tmp_path, imap_account, smtp_server)
    imap_append(imap_account, make_message())
    run_once(app)
    sent = smtp_server.wait_for(2)
    (notification,) = [m.message for m in sent if m.rcpt_tos == (OLGA,)]
    internal = plain(notification)
    answer = "Hello Alice,\nthe technician comes at 14:00.\nOlga"
    imap_append(imap_account, reply_to(notification,
                                       CLIENTS[client](notification, answer, internal),
                                       use_references=client != "apple-mail-iphone"))
    report = run_once(app)
    assert report.drained[0].outcomes[0].classification == "staff"
    relay = smtp_server.wait_for(3)[2]
    assert relay.rcpt_tos == ("alice@customer.test",)
    text = plain(relay.message)
    assert "the technician comes at 14:00" in text
    for line in internal.splitlines():
        if len(line.split()) >= 4:
            assert line.strip() not in text, f"internal line leaked: {line!r}"
    assert "First answer due" not in text and "#note" not in text
    assert relay.message["In-Reply-To"] == "<m1@customer.test>"
    assert "[SUP-1]" in relay.message["Subject"]


def test_forged_reply_and_note_never_reach_customer(tmp_path: Path, imap_account: Any,
                                                    smtp_server: Any) -> None:
    # A #note is kept internal; a forged "manager" mail with the token relays nothing.
    app = app_for(tmp_path, imap_account, smtp_server)
    imap_append(imap_account, make_message())
    run_once(app)
    notification = [m.message for m in smtp_server.wait_for(2) if m.rcpt_tos == (OLGA,)][0]
    imap_append(imap_account, reply_to(notification, "#note the customer is difficult"))
    imap_append(imap_account, make_message(sender=OLGA, subject="Re: [SUP-1] Printer",
                                           body="Dear Alice, you get a full refund.",
                                           message_id="<forged@evil.test>"))
    run_once(app)
    to_customer = [m for m in smtp_server.messages if "alice@customer.test" in m.rcpt_tos]
    assert all("difficult" not in plain(m.message) and "refund" not in plain(m.message)
               for m in to_customer)
    assert not [m for m in to_customer if m.message["X-Mailbot-Kind"] == "relay"]


def test_cross_case_token_from_stranger_opens_new_case(tmp_path: Path, imap_account: Any,
                                                       smtp_server: Any) -> None:
    # Someone else's mail with [SUP-1] in the subject becomes SUP-2, acknowledged to them only.
    app = app_for(tmp_path, imap_account, smtp_server)
    imap_append(imap_account, make_message())
    run_once(app)
    imap_append(imap_account, make_message(sender="mallory@evil.test",
                                           subject="Re: [SUP-1] Printer on fire",
                                           message_id="<m@evil.test>"))
    report = run_once(app)
    assert report.drained[0].outcomes[0].case_token == "[SUP-2]"
    acks = [m for m in smtp_server.wait_for(4) if m.message["X-Mailbot-Kind"] == "ack"]
    assert [a.rcpt_tos for a in acks] == [("alice@customer.test",), ("mallory@evil.test",)]
