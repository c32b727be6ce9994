"""Per-sender acknowledgement rate limit: the last line of defence against mail loops.

The header rules catch robots that say they are robots. A badly behaved helpdesk
that strips every marker, our token and our references would get a new case — and
an acknowledgement — for each of its answers. Counting the acknowledgements already
queued to an address within ``[loop_protection] window`` (by the *mailbox's* time of
the messages that caused them, so a backlog drained late is judged as it arrived)
and refusing more than ``max_acks_per_sender`` ends such an exchange after a few
rounds; the mail is still recorded on its case, only the answer is withheld.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.db.models import Message, Outbox
from mailbot.outbox import ACK_KINDS


def acks_in_window(session: Session, address: str, received_at: datetime, config: Config) -> int:
    """Acknowledgements queued to ``address`` for mail received within the window before ``received_at``."""
    since = received_at - config.loop_protection.window_td
    in_window = (select(Message.id).where(
        Message.message_id == Outbox.cause, Message.direction == "in",
        Message.received_at > since, Message.received_at <= received_at).exists())
    # ``rcpt`` is indexed and the cause is checked by Message-ID (indexed) row by row: the
    # count reads this address's acks, not every message and ack of the window (all of
    # them, while a backlog drains).
    return session.scalar(
        select(func.count()).select_from(Outbox)
        .where(Outbox.rcpt == address.lower(), Outbox.kind.in_(ACK_KINDS), in_window)) or 0


def ack_refusal(session: Session, address: str, received_at: datetime,
                config: Config) -> str | None:
    """Why no acknowledgement may go to ``address`` now, or None when one may.

    Also refuses mailbot's own addresses: a customer mail whose ``Reply-To`` names
    the support address would otherwise have mailbot write to itself.
    """
    if address.lower() in config.own_addresses:
        return f"the reply address {address} is mailbot's own"
    limit = config.loop_protection.max_acks_per_sender
    sent = acks_in_window(session, address, received_at, config)
    if sent >= limit:
        return (f"rate limit: {sent} acknowledgement(s) to {address} within "
                f"{config.loop_protection.window} (loop_protection.max_acks_per_sender = {limit})")
    return None
