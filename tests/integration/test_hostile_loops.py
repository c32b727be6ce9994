"""mailbot against autoresponders on real servers: every exchange stops after at most one ack.

The "other helpdesk" is an aiosmtpd server: every mail mailbot sends it is answered
at once by an auto-reply APPENDed into mailbot's Dovecot mailbox, the way a real
helpdesk's answer would arrive. mailbot's run_once is then run round after round.
"""

from __future__ import annotations

import email
import itertools
from datetime import datetime, timezone
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from factories import config_data, imap_mailbox, make_app, make_message
from mailbot.clock import FixedClock
from mailbot.config import config_from_dict
from mailbot.daemon import App, run_once
from mailbot.db.models import Case, Message, Outbox
from servers import Account, free_port, imap_append

pytestmark = pytest.mark.integration

# The duel happens "now": the mailbox's INTERNALDATE of every APPEND and mailbot's clock agree,
# so nothing scheduled for later (tomorrow's follow-up) falls due in the middle of it.
NOW = datetime.now(timezone.utc).replace(microsecond=0)

HELPDESK = "robot@helpdesk.test"


class Autoresponder:
    """An SMTP server that answers every mail it gets with an auto-reply into ``account``.

    ``style``: "polite" marks its answers (Auto-Submitted, In-Reply-To, our subject);
    "threading" has no marker but keeps our subject token and In-Reply-To;
    "stripping" has no marker, strips the token and every reference (a fresh ticket each time).
    """

    def __init__(self, account: Account, style: str) -> None:
        self.account = account
        self.style = style
        self.received: list[EmailMessage] = []
        self._numbers = itertools.count(1)
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        incoming = email.message_from_bytes(envelope.content, policy=default)
        self.received.append(incoming)  # type: ignore[arg-type]
        imap_append(self.account, self.answer(incoming), msg_time=NOW)  # type: ignore[arg-type]
        return "250 OK"

    def answer(self, incoming: EmailMessage) -> bytes:
        number = next(self._numbers)
        reply = EmailMessage()
        reply["From"] = f"Helpdesk <{HELPDESK}>"
        reply["To"] = str(incoming["From"])
        reply["Date"] = format_datetime(NOW)
        reply["Message-ID"] = make_msgid(domain="helpdesk.test")
        if self.style == "stripping":
            reply["Subject"] = f"Your ticket #{number} has been received"
        else:
            reply["Subject"] = f"Re: {incoming['Subject']}"
            reply["In-Reply-To"] = str(incoming["Message-ID"])
            reply["References"] = str(incoming["Message-ID"])
        if self.style == "polite":
            reply["Auto-Submitted"] = "auto-replied"
        reply.set_content(f"Thank you for contacting us. Ticket #{number}.\n")
        return bytes(reply)

    def __enter__(self) -> Autoresponder:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


def duel_app(tmp_path: Path, account: Account, responder: Autoresponder, **over: Any) -> App:
    data = config_data(tmp_path, mailboxes=[imap_mailbox(account)],
                       smtp={"transport": "smtp", "host": "127.0.0.1", "port": responder.port,
                             "ssl": False, "starttls": False,
                             "from_address": "support@example.test"}, **over)
    return make_app(config_from_dict(data, source=tmp_path / "mailbot.toml"), FixedClock(NOW))


def duel(app: App, account: Account, rounds: int = 6) -> None:
    """The helpdesk writes first; then mailbot and the helpdesk answer each other for ``rounds``."""
    imap_append(account, make_message(sender=f"Helpdesk <{HELPDESK}>", subject="Question",
                                      message_id="<first@helpdesk.test>", date=NOW),
                msg_time=NOW)
    for _ in range(rounds):
        run_once(app)


def count(app: App, model: type) -> int:
    with app.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def acks(app: App) -> int:
    with app.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Outbox)
                                  .where(Outbox.kind == "ack")) or 0)


@pytest.mark.parametrize("style", ["polite", "threading"])
def test_marked_or_threading_autoresponder_gets_one_ack(tmp_path: Path, imap_account: Account,
                                                        style: str) -> None:
    # A responder that marks its answers, or keeps our token/references, gets exactly one ack.
    with Autoresponder(imap_account, style) as responder:
        app = duel_app(tmp_path, imap_account, responder)
        duel(app, imap_account)
    assert len(responder.received) == 1
    assert count(app, Case) == 1 and acks(app) == 1
    with app.db.session() as session:
        inbound = list(session.scalars(select(Message).where(Message.direction == "in")))
    assert len(inbound) == 2 and all(m.case_id == 1 for m in inbound)
    assert inbound[1].classification == ("auto_reply" if style == "polite" else "customer")


def test_stripping_autoresponder_is_stopped_by_the_rate_limit(tmp_path: Path,
                                                              imap_account: Account) -> None:
    # A responder without any marker, token or reference is stopped by max_acks_per_sender = 1.
    with Autoresponder(imap_account, "stripping") as responder:
        app = duel_app(tmp_path, imap_account, responder,
                       loop_protection={"max_acks_per_sender": 1})
        duel(app, imap_account)
    assert len(responder.received) == 1
    # Its answer is still recorded (as a case of its own), only not acknowledged.
    assert count(app, Case) == 2 and acks(app) == 1


def test_stripping_autoresponder_with_default_limit_stops_at_three(tmp_path: Path,
                                                                   imap_account: Account) -> None:
    # With the default limit (3 per hour) the worst responder gets three acks, then silence.
    with Autoresponder(imap_account, "stripping") as responder:
        app = duel_app(tmp_path, imap_account, responder)
        duel(app, imap_account, rounds=8)
    assert len(responder.received) == 3 and acks(app) == 3
    assert count(app, Case) == 4  # every answer recorded; the fourth case is not acknowledged
