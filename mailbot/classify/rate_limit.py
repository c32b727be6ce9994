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

import json
from datetime import datetime

from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.db.models import Message, Outbox
from mailbot.outbox import ACK_KINDS


def acks_in_window(session: Session, address: str, received_at: datetime, config: Config) -> int:
    """Acknowledgements queued to ``address`` for mail received within the window before ``received_at``."""
    since = received_at - config.loop_protection.window_td
    causes = select(Message.message_id).where(
        Message.direction == "in", Message.received_at > since, Message.received_at <= received_at)
    address = address.lower()
    # The JSON text narrows the rows in SQL (a backlog of thousands of acks in the window
    # would otherwise all travel to Python for every new one); the exact test follows.
    quoted = json.dumps(address).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    rows = session.scalars(
        select(Outbox.to_addrs).where(Outbox.kind.in_(ACK_KINDS), Outbox.cause.in_(causes),
                                      func.lower(cast(Outbox.to_addrs, Text))
                                      .like(f"%{quoted}%", escape="\\")))
    return sum(1 for to_addrs in rows if address in (a.lower() for a in to_addrs or []))


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
