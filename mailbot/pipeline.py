"""The pipeline: raw bytes → parse → classify → thread → store → react.

``parse_raw`` is pure and CPU-bound (it may run in worker processes);
``process`` runs inside the caller's transaction, one savepoint per message, so a
batch of messages commits together with the IMAP checkpoint — and a message that
fails is rolled back alone and quarantined with its raw bytes instead of stopping
the batch. Every decision is written to the case's event log with its reason.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot import bounces
from mailbot.assign import Assignment, assign_organization
from mailbot.classify import Classification, classify
from mailbot.config import Config, ManagerConfig
from mailbot.context import Delivery, Outcome, PipelineContext
from mailbot.customers.directory import customer_profile
from mailbot.db.models import Attachment, Case, Message, Quarantine
from mailbot.errors import ParseError
from mailbot.language import LanguageChoice, choose_language
from mailbot.message import Disposition, Inbound, RuleHit
from mailbot.parse_pool import parse_bytes
from mailbot.react import Arrival, react
from mailbot.schedule.zones import ZoneChoice, resolve_zone
from mailbot.staff import StaffAuth, authenticate
from mailbot.store.cases import case_by_number, open_case
from mailbot.thread import ThreadDecision, thread
from mailbot.tokens import clean_subject

__all__ = ["Delivery", "Outcome", "PipelineContext", "STAGES", "parse_raw", "process",
           "quarantine"]

log = logging.getLogger("mailbot.pipeline")

STAGES = ("parse", "classify", "thread", "store", "react")


def parse_raw(raw: bytes, delivery: Delivery, config: Config) -> Inbound | ParseError:
    """Parse in this process, or say why not; never raises. The drain uses the pool."""
    return parse_bytes(raw, delivery.received_at, config.storage.max_message_size,
                       config.smtp.from_address.partition("@")[2])


def process(
    ctx: PipelineContext,
    session: Session,
    raw: bytes,
    parsed: Inbound | ParseError,
    delivery: Delivery,
    on_failure: Callable[[str], None] | None = None,
) -> Outcome:
    """Run one message through the stages after parse, isolated in a savepoint."""
    if isinstance(parsed, ParseError):
        return quarantine(ctx, session, raw, delivery, f"parse: {parsed}")
    try:
        # No autoflush: the ORM would otherwise flush before each of the message's dozen
        # small lookups, one round trip per pending row. The savepoint's release flushes
        # everything the message added at once (one executemany per table); the few
        # places that need a database id flush explicitly.
        with session.no_autoflush, session.begin_nested():
            return _process(ctx, session, raw, parsed, delivery)
    except Exception as exc:  # one bad message must never stop the others
        log.exception("message %s failed; quarantined", parsed.message_id)
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        if on_failure:
            on_failure(detail)
        return quarantine(ctx, session, raw, delivery, f"processing: {detail}")


def quarantine(ctx: PipelineContext, session: Session, raw: bytes, delivery: Delivery,
               reason: str) -> Outcome:
    sha = ctx.blobs.put_raw(raw)
    existing = session.scalar(
        select(Quarantine.id).where(Quarantine.raw_sha256 == sha, Quarantine.status == "held")
    )
    if existing is None:
        session.add(Quarantine(
            mailbox=delivery.mailbox, folder=delivery.folder, uidvalidity=delivery.uidvalidity,
            uid=delivery.uid, raw_sha256=sha, size=len(raw), reason=reason[:2000],
            status="held", created_at=ctx.clock.now(), received_at=delivery.received_at,
            retries=0,
        ))
    log.warning("quarantined message uid=%s mailbox=%s: %s", delivery.uid, delivery.mailbox, reason)
    return Outcome("quarantined", reason=reason)


def _process(ctx: PipelineContext, session: Session, raw: bytes, inbound: Inbound,
             delivery: Delivery) -> Outcome:
    config = ctx.config
    now = ctx.clock.now()
    duplicate = session.scalar(
        select(Message.id).where(Message.message_id == inbound.message_id,
                                 Message.content_hash == inbound.content_hash)
    )
    if duplicate is not None:
        return Outcome("duplicate", inbound.message_id, reason="already recorded")

    verdict = classify(inbound, config)
    if verdict.disposition is Disposition.DROP:
        log.info("message %s dropped: %s", inbound.message_id, verdict.reason)
        return Outcome("dropped", inbound.message_id, classification=verdict.kind,
                       reason=verdict.reason)

    manager, auth = _authenticate_staff(ctx, inbound, verdict)
    if auth is not None and auth.ok:
        verdict = Classification("staff", Disposition.RECORD_ONLY,
                                 [RuleHit("staff", f"{auth.method}: {auth.reason}")])
    decision = thread(session, inbound, config.cases.token_prefix)
    if auth is not None and auth.ok and auth.case_number is not None:
        # The signature names the case; a token in the subject cannot redirect staff mail.
        decision = ThreadDecision(case_by_number(session, auth.case_number), "staff",
                                  auth.reason)
    received_at = inbound.received_at or now
    sender = inbound.from_addr
    report: bounces.DeliveryReport | None = None
    reported: bounces.ReportedMail | None = None
    if verdict.kind == "bounce":
        # A bounce belongs to the case of the mail it reports on, whatever its subject says.
        report = bounces.read_report(raw, inbound, config.smtp.from_address.partition("@")[2])
        reported = bounces.find_reported(session, report)
        if reported is not None:
            decision = ThreadDecision(reported.case, "bounce",
                                      f"delivery report on {reported.message_id}")
    case = decision.case
    new_case = False
    language: LanguageChoice | None = None
    assignment: Assignment | None = None
    zone: ZoneChoice | None = None
    if case is None and verdict.disposition is Disposition.ACKNOWLEDGE:
        case, language, assignment, zone = _open(ctx, session, inbound, delivery, received_at)
        new_case = True

    ctx.blobs.put_raw(raw, inbound.raw_sha256, inbound.raw_gzip)
    inbound.raw_gzip = None  # written; a batch of them would otherwise stay in memory
    message = Message(
        case_id=case.id if case else None, direction="in", classification=verdict.kind,
        message_id=inbound.message_id, content_hash=inbound.content_hash,
        raw_sha256=inbound.raw_sha256, mailbox=delivery.mailbox, folder=delivery.folder,
        uidvalidity=delivery.uidvalidity, uid=delivery.uid, imap_done=delivery.uid is None,
        from_email=sender.email if sender else "", from_name=sender.name if sender else "",
        to_addrs=[a.formatted() for a in inbound.to], cc_addrs=[a.formatted() for a in inbound.cc],
        subject=inbound.subject, date_header=inbound.date, received_at=received_at,
        body_text=inbound.text, size=inbound.size, created_at=now,
    )
    session.add(message)
    session.flush()
    for attachment in inbound.attachments:
        sha = ctx.blobs.put_attachment(attachment.data, attachment.filename)
        session.add(Attachment(message_pk=message.id, filename=attachment.filename,
                               content_type=attachment.content_type[:255],
                               size=len(attachment.data), sha256=sha))

    if case is None:
        log.info("message %s (%s) recorded without a case: %s", inbound.message_id, verdict.kind,
                 decision.reason)
        return Outcome("stored", inbound.message_id, classification=verdict.kind,
                       reason=f"{verdict.reason}; {decision.reason}")

    return react(ctx, session, Arrival(
        inbound=inbound, message=message, case=case, verdict=verdict, decision=decision,
        new_case=new_case, received_at=received_at, language=language, zone=zone,
        assignment=assignment, manager=manager, auth=auth, report=report, reported=reported,
    ), now)


def _open(ctx: PipelineContext, session: Session, inbound: Inbound, delivery: Delivery,
          received_at: datetime) -> tuple[Case, LanguageChoice, Assignment, ZoneChoice]:
    """Open a case; returns it with the language chosen for it and why (for the event log)."""
    config = ctx.config
    sender = inbound.from_addr
    # The customer directory's settings first, then the organization's (mailbot.customers).
    profile = customer_profile(session, config, sender.email if sender else "")
    assignment = assign_organization(session, config, profile.organization)
    organization = assignment.organization
    language = choose_language(customer=profile.language,
                               organization=organization.language if organization else None,
                               text=f"{inbound.subject}\n{inbound.text}",
                               default=config.defaults.language)
    level = profile.service_level or assignment.service_level
    zone = resolve_zone(customer=profile.timezone,
                        organization=organization.timezone if organization else None,
                        sent_at=inbound.date, email=sender.email if sender else "",
                        default=config.defaults.timezone)
    preliminary, detailed = ctx.deadlines.for_new_case(level, received_at)
    case = open_case(
        session,
        prefix=config.cases.token_prefix,
        subject=clean_subject(inbound.subject, config.cases.token_prefix) or "(no subject)",
        mailbox=delivery.mailbox,
        customer_email=sender.email if sender else "",
        customer_name=profile.name or (sender.name if sender else ""),
        service_level=level,
        language=language.language,
        timezone=zone.zone,
        timezone_source=zone.source,
        opened_at=received_at,
        preliminary_due=preliminary,
        detailed_due=detailed,
    )
    case.manager_email = assignment.manager.email if assignment.manager else None
    case.organization = profile.organization_name
    case.registered = profile.registered
    return case, language, assignment, zone


def _authenticate_staff(ctx: PipelineContext, inbound: Inbound, verdict: Classification
                        ) -> tuple[ManagerConfig | None, StaffAuth | None]:
    """A manager's From: on human mail triggers the proof check; nothing else does."""
    sender = inbound.from_addr
    if sender is None or verdict.disposition is not Disposition.ACKNOWLEDGE:
        return None, None
    manager = ctx.config.find_manager(sender.email)
    if manager is None:
        return None, None
    if ctx.historic:
        # History predates our signed notifications: a configured manager's address is the
        # staff side of the conversation there, not a forgery (and no source of #commands).
        return manager, StaffAuth(True, "historic", "imported history from a manager address")
    auth = authenticate(
        inbound, secret=ctx.secret, prefix=ctx.config.cases.token_prefix,
        trusted_authserv_ids=frozenset(i.lower() for i in ctx.config.security.trusted_authserv_ids),
        staff_domains=frozenset(m.email.rpartition("@")[2] for m in ctx.config.managers),
    )
    return manager, auth
