"""Mail from mailbot itself (or carrying its loop marker) must never be answered.

Runs first: our own acknowledgement coming back (a BCC, a forward rule, a list that
echoes) would otherwise look like customer mail and be answered, starting a loop.
"""

from __future__ import annotations

from mailbot.config import Config
from mailbot.message import Inbound, RuleHit

NAME = "own-address"


def check(inbound: Inbound, config: Config) -> RuleHit | None:
    sender = inbound.from_addr.email if inbound.from_addr else ""
    if sender in config.own_addresses:
        return RuleHit(NAME, f"sent from mailbot's own address {sender}")
    for value in inbound.headers.get("x-loop", []):
        marker = value.strip().strip("<>").strip().lower()
        if marker in config.own_addresses:
            return RuleHit(NAME, f"carries our X-Loop marker {value.strip()}")
    return None
