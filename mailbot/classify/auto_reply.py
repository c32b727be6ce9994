"""Automatic mail (RFC 3834 and the de-facto markers): answering it starts loops."""

from __future__ import annotations

from mailbot.config import Config
from mailbot.message import Inbound, RuleHit

NAME = "auto-reply"


def check(inbound: Inbound, config: Config) -> RuleHit | None:
    auto_submitted = (inbound.header("auto-submitted") or "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return RuleHit(NAME, f"Auto-Submitted: {auto_submitted}")
    precedence = (inbound.header("precedence") or "").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return RuleHit(NAME, f"Precedence: {precedence}")
    for header in ("x-autoreply", "x-autorespond", "x-auto-response-suppress",
                   "list-id", "list-unsubscribe", "x-ms-exchange-generated-message-source"):
        value = inbound.header(header)
        if value is not None and (header != "x-auto-response-suppress" or value.strip()):
            return RuleHit(NAME, f"{header} header present")
    return_path = inbound.header("return-path")
    if return_path is not None and return_path.strip() in ("<>", ""):
        return RuleHit(NAME, "empty Return-Path (null sender)")
    return None
