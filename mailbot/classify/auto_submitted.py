"""RFC 3834 ``Auto-Submitted``: any value but ``no`` means a robot wrote it (answering loops)."""

from __future__ import annotations

from mailbot.config import Config
from mailbot.message import Inbound, RuleHit

NAME = "auto-submitted"


def check(inbound: Inbound, config: Config) -> RuleHit | None:
    for value in inbound.headers.get("auto-submitted", []):
        # The keyword may carry parameters ("auto-replied; owner-email=…"); "no" is human mail.
        keyword = value.split(";", 1)[0].strip().lower()
        if keyword and keyword != "no":
            return RuleHit(NAME, f"Auto-Submitted: {keyword}")
    return None
