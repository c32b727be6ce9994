"""Delivery-status notifications: recorded on the case of the mail they report on, never a new case.

Recognised by structure (RFC 3464 ``multipart/report; report-type=delivery-status``,
or a ``message/delivery-status`` part anywhere in the tree) and by the null-sender
daemons that write the non-standard ones (``MAILER-DAEMON``, ``postmaster``). What
the report says is read by ``mailbot.bounces``.
"""

from __future__ import annotations

from mailbot.config import Config
from mailbot.message import Inbound, RuleHit

NAME = "bounce"
_DAEMONS = ("mailer-daemon@", "postmaster@", "mailer-daemon", "postmaster")


def check(inbound: Inbound, config: Config) -> RuleHit | None:
    content_type = (inbound.header("content-type") or "").lower()
    if "multipart/report" in content_type and "delivery-status" in content_type:
        return RuleHit(NAME, "RFC 3464 delivery-status report")
    if any(a.content_type == "message/delivery-status" for a in inbound.attachments):
        return RuleHit(NAME, "contains a message/delivery-status part")
    sender = inbound.from_addr.email if inbound.from_addr else ""
    if sender.startswith(_DAEMONS[:2]) or sender in _DAEMONS[2:]:
        return RuleHit(NAME, f"sent by {sender}")
    return None
