"""Mailing-list traffic (RFC 2369/2919 ``List-Id``, ``List-Unsubscribe``): answering it mails the list."""

from __future__ import annotations

from mailbot.config import Config
from mailbot.message import Inbound, RuleHit

NAME = "mailing-list"
HEADERS = ("list-id", "list-unsubscribe")


def check(inbound: Inbound, config: Config) -> RuleHit | None:
    for header in HEADERS:
        if inbound.headers.get(header):
            return RuleHit(NAME, f"{header} header present (list mail)")
    return None
