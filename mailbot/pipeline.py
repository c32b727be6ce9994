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
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.classify import Classification, classify
from mailbot.clock import Clock
from mailbot.config import Config
from mailbot.db.models import Attachment, Case, Message, Quarantine
from mailbot.errors import ParseError
from mailbot.message import Disposition, Inbound
from mailbot.parse import parse
from mailbot.schedule.deadlines import Deadlines
from mailbot.store.blobs import BlobStore
from mailbot.store.cases import add_event, add_participant, add_thread_refs, open_case
from mailbot.thread import ThreadDecision, thread
from mailbot.outbox.queue import enqueue
from mailbot.outbox.render import format_local
from mailbot.tokens import clean_subject

log = logging.getLogger("mailbot.pipeline")

STAGES = ("parse", "classify", "thread", "store", "react")


@dataclass(frozen=True)
class Delivery:
    """Where a raw message came from: enough to find it again in the mailbox."""

    mailbox: str
    folder: str = ""
    uidvalidity: int | None = None
    uid: int | None = None
    received_at: datetime | None = None  # IMAP INTERNALDATE: the customer's clock starts here


@dataclass(frozen=True)
class Outcome:
    status: str  # stored | duplicate | dropped | quarantined
    message_id: str = ""
    case_token: str | None = None
    new_case: bool = False
    classification: str = ""
    ack_queued: bool = False
    reason: str = ""


@dataclass
class PipelineContext:
    config: Config
    blobs: BlobStore
    clock: Clock
    deadlines: Deadlines


def parse_raw(raw: bytes, delivery: Delivery, config: Config) -> Inbound | ParseError:
    """Parse, or say why not; never raises, so it can run in a pool."""
    if len(raw) > config.storage.max_message_size:
        return ParseError(
            f"message of {len(raw)} bytes exceeds storage.max_message_size "
            f"({config.storage.max_message_size})"
        )
    try:
        return parse(raw, received_at=delivery.received_at,
                     synth_domain=config.smtp.from_address.partition("@")[2])
    except ParseError as exc:
        return exc


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
        with session.begin_nested():
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
            status="held", created_at=ctx.clock.now(),
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

    decision = thread(session, inbound, config.cases.token_prefix)
    received_at = inbound.received_at or now
    sender = inbound.from_addr
    case = decision.case
    new_case = False
    if case is None and verdict.disposition is Disposition.ACKNOWLEDGE:
        case = _open(ctx, session, inbound, delivery, received_at)
        new_case = True

    ctx.blobs.put_raw(raw, inbound.raw_sha256)
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

    add_thread_refs(session, case.id, [inbound.message_id])
    _record_events(session, case, message, inbound, verdict, decision, new_case, received_at)
    if sender and verdict.disposition is Disposition.ACKNOWLEDGE:
        role = "customer" if sender.email == case.customer_email else "cc"
        if add_participant(session, case, sender.email, sender.name, role, received_at):
            if not new_case:
                add_event(session, case, "participant_added", actor=sender.email, at=now,
                          email=sender.email, reason="wrote to the case")
        if new_case:
            for cc in inbound.cc:
                if cc.email not in config.own_addresses and cc.email != sender.email:
                    add_participant(session, case, cc.email, cc.name, "cc", received_at)
        case.last_customer_at = received_at
    case.updated_at = now

    ack_queued = False
    if new_case:
        ack_queued = _queue_ack(ctx, session, case, inbound, message, now)
    log.info("message %s → %s (%s, %s)%s", inbound.message_id, case.token, verdict.kind,
             decision.how, " ack queued" if ack_queued else "")
    return Outcome("stored", inbound.message_id, case.token, new_case, verdict.kind, ack_queued,
                   decision.reason)


def _open(ctx: PipelineContext, session: Session, inbound: Inbound, delivery: Delivery,
          received_at: datetime) -> Case:
    config = ctx.config
    sender = inbound.from_addr
    level = config.defaults.service_level
    zone = config.defaults.timezone
    preliminary, detailed = ctx.deadlines.for_new_case(level, received_at)
    case = open_case(
        session,
        prefix=config.cases.token_prefix,
        subject=clean_subject(inbound.subject, config.cases.token_prefix) or "(no subject)",
        mailbox=delivery.mailbox,
        customer_email=sender.email if sender else "",
        customer_name=sender.name if sender else "",
        service_level=level,
        language=config.defaults.language,
        timezone=zone,
        timezone_source="default",
        opened_at=received_at,
        preliminary_due=preliminary,
        detailed_due=detailed,
    )
    return case


def _record_events(session: Session, case: Case, message: Message, inbound: Inbound,
                   verdict: Classification, decision: ThreadDecision, new_case: bool,
                   at: datetime) -> None:
    actor = inbound.from_addr.email if inbound.from_addr else "unknown"
    if new_case:
        add_event(session, case, "case_opened", actor=actor, at=at, message_pk=message.id,
                  token=case.token, subject=case.subject, reason=decision.reason,
                  service_level=case.service_level,
                  preliminary_due=_iso(case.preliminary_due), detailed_due=_iso(case.detailed_due))
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
    context = {
        "case": {"token": case.token, "number": case.number, "subject": case.subject,
                 "service_level": case.service_level},
        "customer": {"name": sender.name, "email": sender.email},
        "subject": case.subject,
        "received_at": format_local(message.received_at, case.timezone),
        "preliminary_due": format_local(case.preliminary_due, case.timezone),
        "detailed_due": format_local(case.detailed_due, case.timezone),
        "timezone": case.timezone,
        "support_address": config.smtp.from_address,
    }
    row = enqueue(
        session, case=case, kind="ack", cause=inbound.message_id, to=[reply_to], context=context,
        now=now, domain=config.smtp.from_address.partition("@")[2],
        in_reply_to=inbound.message_id,
        references=[*inbound.references[-10:], inbound.message_id],
        language=case.language,
    )
    if row is None:
        return False
    add_event(session, case, "ack_queued", actor="mailbot", at=now, message_pk=message.id,
              message_id=row.message_id, to=[reply_to])
    return True


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
