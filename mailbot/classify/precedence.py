"""``Precedence: bulk|junk|list|auto_reply``: the pre-RFC 3834 way robots mark their mail."""

from __future__ import annotations

from mailbot.config import Config
from mailbot.message import Inbound, RuleHit

NAME = "precedence"
AUTOMATIC = frozenset({"bulk", "junk", "list", "auto_reply", "auto-reply"})


def check(inbound: Inbound, config: Config) -> RuleHit | None:
    for value in inbound.headers.get("precedence", []):
        word = value.strip().lower()
        if word in AUTOMATIC:
            return RuleHit(NAME, f"Precedence: {word}")
    return None
