"""classify: who sent this and may it be answered?

Rules run in order; each returns a ``RuleHit`` (with the reason that goes into the
case's event log) or None. The first hit decides, as in Mailman's chains: own mail
is dropped before anything else so mailbot can never answer itself, automatic mail
is recorded but never acknowledged, and only what no rule claims is a customer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mailbot.classify import auto_reply, bounce, own_address
from mailbot.config import Config
from mailbot.message import Disposition, Inbound, RuleHit

Rule = Callable[[Inbound, Config], RuleHit | None]

# (rule, classification recorded on the message, what happens to it)
RULES: tuple[tuple[Rule, str, Disposition], ...] = (
    (own_address.check, "own", Disposition.DROP),
    (bounce.check, "bounce", Disposition.RECORD_ONLY),
    (auto_reply.check, "auto_reply", Disposition.RECORD_ONLY),
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
