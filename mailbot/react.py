"""react: the last stage — what a stored message sets in motion.

The audit trail first (case opened, message received, why it threaded there),
then by kind of mail: a manager's authenticated reply is applied and relayed
(``managers``); a customer's mail adds participants, gets an acknowledgement if it
opened the case, reaches the case's manager, reopens or resumes the SLA clock and
plans the overnight follow-up; automatic mail is only recorded. Everything here
runs in the message's savepoint: it all happens, or none of it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from mailbot import bounces
from mailbot.assign import Assignment
from mailbot.backfill.record import record_history
from mailbot.classify import Classification
from mailbot.classify.rate_limit import ack_refusal
from mailbot.config import ManagerConfig
from mailbot.context import Outcome, PipelineContext
from mailbot.customers.directory import ack_kind
from mailbot.db.models import Case, Message
from mailbot.language import LanguageChoice
from mailbot.managers import handle_staff_reply, notify_manager
from mailbot.message import Disposition, Inbound
from mailbot.outbox.contexts import ack_context
from mailbot.outbox.queue import enqueue
from mailbot.schedule import sla
from mailbot.schedule.overnight import plan_digest, plan_followup
from mailbot.schedule.zones import ZoneChoice
from mailbot.staff import StaffAuth
from mailbot.store.cases import add_event, add_participant, add_thread_refs
from mailbot.thread import ThreadDecision

log = logging.getLogger("mailbot.pipeline")

#: Cc addresses of a new case's first mail that become participants; the rest are only recorded.
MAX_CC_PARTICIPANTS = 50


@dataclass(frozen=True)
class Arrival:
    """A stored inbound message of a case and everything the earlier stages decided about it."""

    inbound: Inbound
    message: Message
    case: Case
    verdict: Classification
    decision: ThreadDecision
    new_case: bool
    received_at: datetime
    language: LanguageChoice | None
    zone: ZoneChoice | None
    assignment: Assignment | None
    manager: ManagerConfig | None  # the manager whose address sent it, if any
    auth: StaffAuth | None  # the proof check of that manager's mail
    report: bounces.DeliveryReport | None
    reported: bounces.ReportedMail | None


def react(ctx: PipelineContext, session: Session, arrival: Arrival, now: datetime) -> Outcome:
    if ctx.historic:
        return record_history(ctx, session, arrival, now)
    config = ctx.config
    inbound, message, case = arrival.inbound, arrival.message, arrival.case
    verdict, decision, new_case = arrival.verdict, arrival.decision, arrival.new_case
    received_at, language, zone = arrival.received_at, arrival.language, arrival.zone
    assignment, manager, auth = arrival.assignment, arrival.manager, arrival.auth
    report, reported = arrival.report, arrival.reported
    sender = inbound.from_addr
    add_thread_refs(session, case.id, [inbound.message_id])
    _record_events(session, case, message, inbound, verdict, decision, new_case, received_at,
                   language, zone)
    if assignment is not None:
        add_event(session, case, "assigned", actor="mailbot", at=received_at,
                  manager=case.manager_email, reason=assignment.reason,
                  organization=assignment.organization.name if assignment.organization else None)
        sla.plan(session, config, ctx.deadlines, case, start=received_at, now=now, fresh=True)
    if report is not None:
        bounces.record(session, config, case, message, report, reported, received_at)
    if verdict.kind == "staff" and manager is not None:
        done = handle_staff_reply(session, config, ctx.secret, ctx.deadlines, case, message,
                                  manager, now)
        log.info("message %s → %s (staff %s): %s", inbound.message_id, case.token,
                 manager.email, done)
        return Outcome("stored", inbound.message_id, case.token, False, "staff", False, done)
    if auth is not None and not auth.ok:
        add_event(session, case, "staff_auth_failed", actor=sender.email if sender else "",
                  at=now, message_pk=message.id, reason=auth.reason,
                  note="handled as customer mail; commands ignored")
    if sender and verdict.disposition is Disposition.ACKNOWLEDGE:
        role = "customer" if sender.email == case.customer_email else "cc"
        if add_participant(session, case, sender.email, sender.name, role, received_at,
                           new_case=new_case):
            if not new_case:
                add_event(session, case, "participant_added", actor=sender.email, at=now,
                          email=sender.email, reason="wrote to the case")
        if new_case:
            ccs = {cc.email: cc for cc in inbound.cc
                   if cc.email not in config.own_addresses and cc.email != sender.email}
            for cc in list(ccs.values())[:MAX_CC_PARTICIPANTS]:
                add_participant(session, case, cc.email, cc.name, "cc", received_at, new_case=True)
            if len(ccs) > MAX_CC_PARTICIPANTS:
                # A blast to thousands is not a conversation; relaying to all would be spam.
                add_event(session, case, "participants_capped", actor="mailbot", at=now,
                          message_pk=message.id, cc_count=len(ccs),
                          reason=f"{len(ccs)} Cc addresses; only the first "
                                 f"{MAX_CC_PARTICIPANTS} became participants")
        case.last_customer_at = received_at
    case.updated_at = now

    ack_queued = False
    if new_case:
        ack_queued = _queue_ack(ctx, session, case, inbound, message, now)
        notify_manager(session, config, ctx.secret, case, message, kind="manager_new_case",
                       now=now, new_case=True,
                       attachment_names=[a.filename for a in inbound.attachments])
    elif verdict.disposition is Disposition.ACKNOWLEDGE:
        if case.status == "closed":
            case.status, case.closed_at = "open", None
            add_event(session, case, "reopened", actor=message.from_email, at=now,
                      message_pk=message.id, reason="the customer wrote after it was closed")
            sla.restart_detailed(session, config, ctx.deadlines, case, actor=message.from_email,
                                 now=now, message_pk=message.id)
        elif case.paused_at is not None:
            sla.resume(session, config, ctx.deadlines, case, actor=message.from_email, now=now,
                       message_pk=message.id)
        notify_manager(session, config, ctx.secret, case, message, kind="manager_update",
                       now=now, attachment_names=[a.filename for a in inbound.attachments])
    if verdict.disposition is Disposition.ACKNOWLEDGE:
        _plan_overnight(ctx, session, case, received_at, now, new_case)
    log.info("message %s → %s (%s, %s)%s", inbound.message_id, case.token, verdict.kind,
             decision.how, " ack queued" if ack_queued else "")
    return Outcome("stored", inbound.message_id, case.token, new_case, verdict.kind, ack_queued,
                   decision.reason)


def _plan_overnight(ctx: PipelineContext, session: Session, case: Case, received_at: datetime,
                    now: datetime, new_case: bool) -> None:
    """The customer's morning follow-up, and their manager's morning digest."""
    plan_followup(session, ctx.config, ctx.deadlines, case, received_at, now,
                  fresh=new_case)
    manager = ctx.config.find_manager(case.manager_email or "")
    if manager is not None:
        plan_digest(session, ctx.config, ctx.deadlines, manager, received_at, now)


def _record_events(session: Session, case: Case, message: Message, inbound: Inbound,
                   verdict: Classification, decision: ThreadDecision, new_case: bool,
                   at: datetime, language: LanguageChoice | None = None,
                   zone: ZoneChoice | None = None) -> None:
    actor = inbound.from_addr.email if inbound.from_addr else "unknown"
    if new_case:
        add_event(session, case, "case_opened", actor=actor, at=at, message_pk=message.id,
                  token=case.token, subject=case.subject, reason=decision.reason,
                  service_level=case.service_level,
                  preliminary_due=_iso(case.preliminary_due), detailed_due=_iso(case.detailed_due),
                  language=case.language,
                  language_source=language.source if language else "default",
                  timezone=case.timezone, timezone_source=case.timezone_source,
                  timezone_reason=zone.reason if zone else None, registered=case.registered)
        if decision.refused_token is not None:
            add_event(session, case, "token_refused", actor=actor, at=at, message_pk=message.id,
                      token_number=decision.refused_token, reason=decision.reason)
    add_event(session, case, "message_received", actor=actor, at=at, message_pk=message.id,
              message_id=inbound.message_id, classification=verdict.kind,
              classification_reason=verdict.reason, threaded_by=decision.how,
              thread_reason=decision.reason,
              synthesized_message_id=inbound.message_id_synthesized)
    if verdict.disposition is Disposition.RECORD_ONLY:
        add_event(session, case, "reply_suppressed", actor="mailbot", at=at,
                  message_pk=message.id, reason=verdict.reason)


def _queue_ack(ctx: PipelineContext, session: Session, case: Case, inbound: Inbound,
               message: Message, now: datetime) -> bool:
    config = ctx.config
    sender = inbound.from_addr
    if sender is None:
        add_event(session, case, "reply_suppressed", actor="mailbot", at=now,
                  message_pk=message.id, reason="no sender address to answer")
        return False
    reply_to = inbound.reply_to[0].email if inbound.reply_to else sender.email
    refusal = ack_refusal(session, reply_to, message.received_at, config)
    if refusal is not None:
        add_event(session, case, "reply_suppressed", actor="mailbot", at=now,
                  message_pk=message.id, reason=refusal)
        return False
    context = ack_context(case, message.received_at, config)
    kind = ack_kind(session, config, case)
    row = enqueue(
        session, case=case, kind=kind, cause=inbound.message_id, to=[reply_to], context=context,
        now=now, domain=config.smtp.from_address.partition("@")[2],
        in_reply_to=inbound.message_id,
        references=[*inbound.references[-10:], inbound.message_id],
        language=case.language, check_existing=False,  # the case is new: nothing queued yet
    )
    if row is None:
        return False
    add_event(session, case, "ack_queued", actor="mailbot", at=now, message_pk=message.id,
              message_id=row.message_id, to=[reply_to], mail_kind=kind)
    return True


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
