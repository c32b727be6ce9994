"""Delivery-status notifications: recorded, never acknowledged, never a new case."""

from __future__ import annotations

from mailbot.config import Config
from mailbot.message import Inbound, RuleHit

NAME = "bounce"
_DAEMONS = ("mailer-daemon@", "postmaster@")


def check(inbound: Inbound, config: Config) -> RuleHit | None:
    content_type = (inbound.header("content-type") or "").lower()
    if "multipart/report" in content_type and "delivery-status" in content_type:
        return RuleHit(NAME, "RFC 3464 delivery-status report")
    sender = inbound.from_addr.email if inbound.from_addr else ""
    if sender.startswith(_DAEMONS):
        return RuleHit(NAME, f"sent by {sender}")
    return None
