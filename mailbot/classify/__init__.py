"""classify: who sent this and may it be answered?

Rules run in order; each returns a ``RuleHit`` (with the reason that goes into the
case's event log) or None. The first hit decides, as in Mailman's chains: own mail
is dropped before anything else so mailbot can never answer itself, bounces are
recognised before the generic robot markers (a DSN is also a null-sender mail, but
it must be matched to the mail it reports on), automatic mail is recorded but never
acknowledged, and only what no rule claims is a customer. One module per rule, so
each marker has one place and one test row.

The per-sender acknowledgement rate limit is not a rule here: it depends on what was
already sent, so it lives with the outbox decision (``classify.rate_limit``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mailbot.classify import (
    auto_submitted,
    autoresponder,
    bounce,
    mailing_list,
    null_sender,
    own_address,
    precedence,
)
from mailbot.config import Config
from mailbot.message import Disposition, Inbound, RuleHit

Rule = Callable[[Inbound, Config], RuleHit | None]

# (rule, classification recorded on the message, what happens to it)
RULES: tuple[tuple[Rule, str, Disposition], ...] = (
    (own_address.check, "own", Disposition.DROP),
    (bounce.check, "bounce", Disposition.RECORD_ONLY),
    (auto_submitted.check, "auto_reply", Disposition.RECORD_ONLY),
    (autoresponder.check, "auto_reply", Disposition.RECORD_ONLY),
    (precedence.check, "auto_reply", Disposition.RECORD_ONLY),
    (mailing_list.check, "auto_reply", Disposition.RECORD_ONLY),
    (null_sender.check, "auto_reply", Disposition.RECORD_ONLY),
)


@dataclass(frozen=True)
class Classification:
    kind: str
    disposition: Disposition
    hits: list[RuleHit] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(f"{hit.rule}: {hit.reason}" for hit in self.hits) or "no rule matched"


def classify(inbound: Inbound, config: Config) -> Classification:
    for rule, kind, disposition in RULES:
        hit = rule(inbound, config)
        if hit is not None:
            return Classification(kind, disposition, [hit])
    return Classification("customer", Disposition.ACKNOWLEDGE)
