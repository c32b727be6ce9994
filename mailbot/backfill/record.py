"""What a historic message leaves behind: the record of a conversation, and nothing else.

The react stage hands a message here instead of acting on it when the pipeline runs
in historic mode (``mailbot import``). The customer was answered long ago by
another system, so there is no acknowledgement, no manager notification, no relay,
no ``#command``, no bounce notice, no deadline, reminder, follow-up or digest.

A case the import opens is closed at once (closed at its latest historic message)
and carries an ``imported`` event; it has no deadlines, because mailbot made no
promise for it. Live mail that later threads into it reopens it as it would any
closed case and starts the clock from then. Reports can leave such cases out by
that event (``imported_case_ids``). A historic message that threads into a live case
is recorded there without touching its status.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.context import Outcome, PipelineContext
from mailbot.db.models import Event
from mailbot.message import Disposition
from mailbot.store.cases import add_event, add_participant, add_thread_refs

if TYPE_CHECKING:
    from mailbot.react import Arrival

IMPORTED = "imported"  # the event that marks a case opened from history
#: As for live mail: a blast to thousands is not a conversation.
MAX_CC_PARTICIPANTS = 50


def record_history(ctx: PipelineContext, session: Session, arrival: Arrival,
                   now: datetime) -> Outcome:
    """Record one historic message on its case; events carry the mailbox's time, not now."""
    inbound, message, case, verdict = arrival.inbound, arrival.message, arrival.case, arrival.verdict
    at = arrival.received_at
    actor = inbound.from_addr.email if inbound.from_addr else "unknown"
    add_thread_refs(session, case.id, [inbound.message_id])
    if arrival.new_case:
        _open_closed(session, arrival, actor, now)
        imported = True
    else:
        imported = is_imported(session, case.id)
    add_event(session, case, "message_received", actor=actor, at=at, message_pk=message.id,
              message_id=inbound.message_id, classification=verdict.kind,
              classification_reason=verdict.reason, threaded_by=arrival.decision.how,
              thread_reason=arrival.decision.reason, imported=True,
              synthesized_message_id=inbound.message_id_synthesized)
    sender = inbound.from_addr
    if sender and verdict.disposition is Disposition.ACKNOWLEDGE:
        role = "customer" if sender.email == case.customer_email else "cc"
        add_participant(session, case, sender.email, sender.name, role, at)
        if arrival.new_case:
            ccs = [cc for cc in {c.email: c for c in inbound.cc}.values()
                   if cc.email != sender.email and cc.email not in ctx.config.own_addresses]
            for cc in ccs[:MAX_CC_PARTICIPANTS]:
                add_participant(session, case, cc.email, cc.name, "cc", at)
        if case.last_customer_at is None or at > case.last_customer_at:
            case.last_customer_at = at
    if imported and case.status == "closed":
        if case.closed_at is None or at > case.closed_at:
            case.closed_at = at
        manager = arrival.manager
        if verdict.kind == "staff" and manager is not None and case.manager_email != manager.email:
            # Whoever answered in the history is the manager the customer knows.
            add_event(session, case, "assigned", actor="mailbot", at=at, message_pk=message.id,
                      manager=manager.email, previous=case.manager_email,
                      reason="answered the case in the imported history")
            case.manager_email = manager.email
    case.updated_at = now
    return Outcome("stored", inbound.message_id, case.token, arrival.new_case, verdict.kind,
                   False, arrival.decision.reason)


def _open_closed(session: Session, arrival: Arrival, actor: str, now: datetime) -> None:
    case, message, at = arrival.case, arrival.message, arrival.received_at
    case.status, case.closed_at = "closed", at
    case.preliminary_due = case.detailed_due = None
    language, zone, assignment = arrival.language, arrival.zone, arrival.assignment
    add_event(session, case, "case_opened", actor=actor, at=at, message_pk=message.id,
              token=case.token, subject=case.subject, reason=arrival.decision.reason,
              service_level=case.service_level, language=case.language,
              language_source=language.source if language else "default",
              timezone=case.timezone, timezone_source=case.timezone_source,
              timezone_reason=zone.reason if zone else None, imported=True)
    if assignment is not None:
        add_event(session, case, "assigned", actor="mailbot", at=at, manager=case.manager_email,
                  reason=assignment.reason,
                  organization=assignment.organization.name if assignment.organization else None)
    add_event(session, case, IMPORTED, actor="mailbot", at=now, message_pk=message.id,
              mailbox=message.mailbox, folder=message.folder,
              reason="opened from mail history by `mailbot import`: closed, no acknowledgement, "
                     "no deadlines; live mail reopens it")


def is_imported(session: Session, case_id: int) -> bool:
    return session.scalar(select(Event.id).where(Event.case_id == case_id,
                                                 Event.kind == IMPORTED).limit(1)) is not None


def imported_case_ids(session: Session) -> set[int]:
    """Cases opened from history, for reports that measure only promises mailbot made."""
    return {case_id for case_id in session.scalars(
        select(Event.case_id).where(Event.kind == IMPORTED)) if case_id is not None}

