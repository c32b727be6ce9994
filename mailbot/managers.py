"""The reply-from-mail-client loop: notify the manager, act on what they answer.

- A new case (and every later customer message) reaches the case's manager in a
  mail whose Message-ID and Reply-To are signed (``mailbot.staff``): answering it
  is what proves a reply is theirs.
- An authenticated reply is read for first-line commands (``mailbot.commands``),
  cut down to what the manager wrote (``mailbot.quoting``), and relayed to the
  customer and the customer's CCs from the support address, threaded on the
  customer's latest message, with the manager's own attachments.
- A command that cannot be carried out relays nothing and tells the manager why;
  ``#note`` is recorded and never leaves the building.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.commands import Parsed, parse_commands
from mailbot.config import Config, ManagerConfig
from mailbot.db.models import Attachment, Case, Message, Outbox, Participant
from mailbot.outbox import ACK_KINDS
from mailbot.outbox.contexts import case_base
from mailbot.outbox.queue import enqueue
from mailbot.outbox.render import format_local, one_line
from mailbot.quoting import latest_reply
from mailbot.schedule import sla
from mailbot.schedule.deadlines import Deadlines
from mailbot.staff import signed_message_id, signed_reply_address
from mailbot.store.cases import add_event

NOTIFICATION_KINDS = ("manager_new_case", "manager_update")
# Short tags keep signed Message-IDs under the 78-column fold, which some clients mangle.
ID_TAGS = {"manager_new_case": "new", "manager_update": "upd", "reminder": "rem"}
COMMAND_ERROR_KIND = "command_error"
INTERNAL_CLASSES = (*NOTIFICATION_KINDS, "staff_note", COMMAND_ERROR_KIND, "reminder",
                    "escalation")


@dataclass(frozen=True)
class SignedHeaders:
    message_id: str | None
    context: dict[str, str]  # {"reply_to": …}: compose turns it into the Reply-To header


def signed_headers(config: Config, secret: bytes | None, case: Case, kind: str) -> SignedHeaders:
    """Message-ID and Reply-To for mail a manager may answer: both prove the answer is theirs."""
    if secret is None:
        return SignedHeaders(None, {})
    prefix = config.cases.token_prefix
    return SignedHeaders(
        signed_message_id(secret, prefix, case.number, ID_TAGS[kind], _domain(config)),
        {"reply_to": signed_reply_address(secret, prefix, case.number, config.smtp.from_address)},
    )


def _domain(config: Config) -> str:
    return config.smtp.from_address.partition("@")[2]


def manager_context(manager: ManagerConfig) -> dict[str, str]:
    return {"name": one_line(manager.name or manager.email), "email": manager.email}


def _attachment_rows(session: Session, message: Message) -> list[Attachment]:
    # The pipeline runs without autoflush; the message's attachments may still be pending.
    session.flush()
    return list(session.scalars(select(Attachment).where(Attachment.message_pk == message.id)
                                .order_by(Attachment.id)))


def notify_manager(session: Session, config: Config, secret: bytes | None, case: Case,
                   message: Message, *, kind: str, now: datetime,
                   cause: str | None = None, attachment_names: list[str] | None = None,
                   new_case: bool = False) -> Outbox | None:
    """Send the case's manager the customer's message, in a mail they can answer.

    ``cause`` defaults to the message's id; a hand-over names its own (the #assign
    reply), or the new manager would be "already notified" by the old one's mail.
    The pipeline passes what it already knows (the attachments' names; that the case
    is new, so nothing can be queued for it yet) to save the lookups.
    """
    manager = config.find_manager(case.manager_email or "")
    if manager is None or secret is None:
        add_event(session, case, "manager_not_notified", actor="mailbot", at=now,
                  message_pk=message.id,
                  reason="no manager assigned" if manager is None else "no security secret")
        return None
    zone = manager.timezone
    headers = signed_headers(config, secret, case, kind)
    context: dict[str, Any] = {
        **case_base(case, config),
        "manager": manager_context(manager),
        "received_at": format_local(message.received_at, zone),
        "preliminary_due": format_local(case.preliminary_due, zone),
        "detailed_due": format_local(case.detailed_due, zone),
        "text": message.body_text,
        "attachments": (attachment_names if attachment_names is not None
                        else [a.filename for a in _attachment_rows(session, message)]),
        **headers.context,
    }
    row = enqueue(
        session, case=case, kind=kind, cause=cause or message.message_id, to=[manager.email],
        context=context, now=now, domain=_domain(config), language=manager.language,
        message_id=headers.message_id, check_existing=not new_case,
    )
    if row is not None:
        add_event(session, case, "manager_notified", actor="mailbot", at=now,
                  message_pk=message.id, manager=manager.email, mail_kind=kind,
                  message_id=row.message_id)
    return row


def handle_staff_reply(session: Session, config: Config, secret: bytes | None,
                       deadlines: Deadlines, case: Case, message: Message,
                       manager: ManagerConfig, now: datetime) -> str:
    """Apply an authenticated manager reply; returns what was done (for logs and tests)."""
    parsed = parse_commands(message.body_text)
    if parsed.errors:
        return _reject(session, config, case, message, manager, parsed.errors, now)
    if parsed.has("note"):
        message.classification = "staff_note"
        add_event(session, case, "note", actor=manager.email, at=now, message_pk=message.id,
                  text=parsed.text)
        return "note"
    if parsed.has("assign"):
        target = config.find_manager(parsed.argument("assign"))
        if target is None:
            return _reject(session, config, case, message, manager,
                           [f"#assign: no manager {parsed.argument('assign')!r} "
                            f"(known: {', '.join(m.email for m in config.managers)})"], now)
    text = latest_reply(parsed.text, _internal_texts(session, case))
    if not text and not parsed.commands:
        return _reject(session, config, case, message, manager,
                       ["nothing to relay: no text above the quoted message"], now)
    done = [_apply(session, config, secret, deadlines, case, message, manager, parsed, now)]
    if text:
        relay = _relay(session, config, case, message, manager, text, now)
        if relay is not None:
            done.append("relayed")
            if case.first_response_at is None:
                case.first_response_at = now
                add_event(session, case, "preliminary_answer", actor=manager.email, at=now,
                          message_pk=message.id, message_id=relay.message_id)
            if parsed.has("detailed") and case.detailed_at is None:
                case.detailed_at = now
                add_event(session, case, "detailed_answer", actor=manager.email, at=now,
                          message_pk=message.id, message_id=relay.message_id)
    if case.paused_at is None:
        # Answers met deadlines and #close ended them: re-plan so no stale reminder fires.
        sla.plan(session, config, deadlines, case, start=now, now=now)
    case.updated_at = now
    return " ".join(d for d in done if d)


def _apply(session: Session, config: Config, secret: bytes | None, deadlines: Deadlines,
           case: Case, message: Message, manager: ManagerConfig, parsed: Parsed,
           now: datetime) -> str:
    done = []
    for command in parsed.commands:
        if command.name == "close" and case.status != "closed":
            case.status, case.closed_at = "closed", now
            add_event(session, case, "closed", actor=manager.email, at=now, message_pk=message.id)
            done.append("closed")
        elif command.name == "reopen" and case.status == "closed":
            case.status, case.closed_at = "open", None
            add_event(session, case, "reopened", actor=manager.email, at=now,
                      message_pk=message.id)
            sla.restart_detailed(session, config, deadlines, case, actor=manager.email, now=now,
                                 message_pk=message.id)
            done.append("reopened")
        elif command.name == "wait":
            case.status = "waiting"
            add_event(session, case, "waiting_for_customer", actor=manager.email, at=now,
                      message_pk=message.id)
            sla.pause(session, case, actor=manager.email, now=now, message_pk=message.id)
            done.append("waiting")
        elif command.name == "assign":
            target = config.find_manager(command.argument)
            assert target is not None  # checked before anything was applied
            previous, case.manager_email = case.manager_email, target.email
            add_event(session, case, "assigned", actor=manager.email, at=now,
                      message_pk=message.id, manager=target.email, previous=previous,
                      reason="#assign")
            first = session.scalar(select(Message).where(Message.case_id == case.id,
                                                         Message.direction == "in")
                                   .order_by(Message.id))
            if first is not None and target.email != previous:
                notify_manager(session, config, secret, case, first, kind="manager_new_case",
                               now=now, cause=f"assign:{message.message_id}")
            done.append("assigned")
    return " ".join(done)


def _internal_texts(session: Session, case: Case) -> list[str]:
    """Everything a manager may have quoted that the customer must never see."""
    return [text for text in session.scalars(
        select(Message.body_text).where(Message.case_id == case.id,
                                        Message.classification.in_(INTERNAL_CLASSES)))
            if text]


def _relay(session: Session, config: Config, case: Case, message: Message,
           manager: ManagerConfig, text: str, now: datetime) -> Outbox | None:
    latest = session.scalar(
        select(Message).where(Message.case_id == case.id, Message.direction == "in",
                              Message.classification == "customer")
        .order_by(Message.received_at.desc(), Message.id.desc()))
    references = [m for m in session.scalars(
        select(Message.message_id).where(Message.case_id == case.id,
                                         Message.classification.in_(("customer", "relay",
                                                                     *ACK_KINDS)))
        .order_by(Message.id))][-10:]
    cc = [p.email for p in session.scalars(
        select(Participant).where(Participant.case_id == case.id, Participant.role == "cc"))
          if p.email not in config.own_addresses and config.find_manager(p.email) is None]
    files = _attachment_rows(session, message)
    context: dict[str, Any] = {
        **case_base(case, config),
        "manager": manager_context(manager),
        "text": text,
        "attachments": [a.filename for a in files],
        "attachment_files": [{"sha256": a.sha256, "filename": a.filename,
                              "content_type": a.content_type} for a in files],
    }
    row = enqueue(
        session, case=case, kind="relay", cause=message.message_id, to=[case.customer_email],
        cc=cc, context=context, now=now, domain=_domain(config),
        in_reply_to=latest.message_id if latest else None, references=references,
        language=case.language,
    )
    if row is not None:
        add_event(session, case, "relay_queued", actor=manager.email, at=now,
                  message_pk=message.id, message_id=row.message_id,
                  to=[case.customer_email, *cc], attachments=context["attachments"])
    return row


def _reject(session: Session, config: Config, case: Case, message: Message,
            manager: ManagerConfig, errors: list[str], now: datetime) -> str:
    """Nothing is relayed; the manager is told why in a short mail built in code."""
    add_event(session, case, "command_rejected", actor=manager.email, at=now,
              message_pk=message.id, errors=errors, reason="; ".join(errors))
    enqueue(session, case=case, kind=COMMAND_ERROR_KIND, cause=message.message_id,
            to=[manager.email], context={"token": case.token, "errors": errors,
                                         "subject": one_line(message.subject)},
            now=now, domain=_domain(config), in_reply_to=message.message_id,
            references=[message.message_id], language=manager.language)
    return "rejected"


def notify_manager_plain(session: Session, config: Config, case: Case, *, kind: str, cause: str,
                         subject: str, lines: list[str], now: datetime) -> Outbox | None:
    """A short notice to the case's manager, built in code (see ``render_plain``)."""
    manager = config.find_manager(case.manager_email or "")
    if manager is None:
        return None
    return enqueue(session, case=case, kind=kind, cause=cause, to=[manager.email],
                   context={"subject": one_line(subject), "lines": lines, "token": case.token},
                   now=now, domain=_domain(config), language=manager.language)


def render_plain(context: dict[str, Any]) -> tuple[str, str]:
    """Subject and body of a ``notify_manager_plain`` notice."""
    body = "\n".join(context.get("lines", [])) + f"\n\nCase {context.get('token', '')}.\n"
    return str(context.get("subject", "")), body


def render_command_error(context: dict[str, Any]) -> tuple[str, str]:
    """Subject and body of the error mail: plain text in code, so it cannot break."""
    errors = "\n".join(f"  - {error}" for error in context.get("errors", []))
    body = ("Your reply was NOT sent to the customer, and no command was carried out:\n\n"
            f"{errors}\n\n"
            "Commands go on the first lines of the reply, one per line: #note, #close, "
            "#reopen, #assign <email or name>, #wait, #detailed. Fix the reply and send it "
            "again.\n")
    return f"Not sent: {context.get('subject', '')}", body
