"""thread: which case does a message belong to?

Order (DESIGN.md, "thread"): the subject token, then In-Reply-To/References naming
any message a case has seen or sent, then a new case. A token alone is not enough
for a stranger: someone who is not on the case and whose headers name none of its
messages gets a new case instead of writing into someone else's (cross-case
injection). The decision carries its reason for the event log.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from mailbot.db.models import Case
from mailbot.message import Inbound
from mailbot.store.cases import case_by_number, cases_referenced, is_participant
from mailbot.tokens import find_token


@dataclass(frozen=True)
class ThreadDecision:
    case: Case | None  # None: open a new case (or, for automatic mail, none at all)
    how: str  # token | references | new
    reason: str
    refused_token: int | None = None  # a token we saw but did not trust


def thread(session: Session, inbound: Inbound, prefix: str) -> ThreadDecision:
    sender = inbound.from_addr.email if inbound.from_addr else ""
    referenced = cases_referenced(session, inbound.all_references())
    refused: int | None = None

    number = find_token(inbound.subject, prefix)
    if number is not None:
        case = case_by_number(session, number)
        if case is not None:
            if case.id in referenced:
                return ThreadDecision(case, "token", f"token {case.token}, references confirm")
            if sender and is_participant(session, case.id, sender):
                return ThreadDecision(case, "token", f"token {case.token} from participant {sender}")
            refused = number
        # An unknown number is just text in a subject: fall through.

    if referenced:
        case = session.get(Case, referenced[0])
        assert case is not None
        return ThreadDecision(case, "references", "In-Reply-To/References name a message of "
                              f"{case.token}", refused)
    if refused is not None:
        return ThreadDecision(None, "new", f"token #{refused} used by non-participant {sender} "
                              "without references to that case", refused)
    return ThreadDecision(None, "new", "no token and no known references")
