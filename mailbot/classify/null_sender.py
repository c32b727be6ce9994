"""An empty ``Return-Path`` (``<>``, the SMTP null sender) marks mail that must not be answered.

RFC 5321 reserves the null reverse-path for notifications precisely so that no
one answers them; an acknowledgement to one would go to nobody or loop.
"""

from __future__ import annotations

from mailbot.config import Config
from mailbot.message import Inbound, RuleHit

NAME = "null-sender"


def check(inbound: Inbound, config: Config) -> RuleHit | None:
    for value in inbound.headers.get("return-path", []):
        if value.strip() in ("<>", "", "< >"):
            return RuleHit(NAME, "empty Return-Path (null sender)")
    return None
