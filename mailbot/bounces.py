"""Bounces: what a delivery-status notification says, which of our mails it is about, and what follows.

RFC 3464 reports are read with the standard library's ``email`` package, which
parses ``message/delivery-status`` into header blocks (one per message, one per
recipient). Many servers still send free-text bounces (Postfix/Exim/qmail/
Exchange templates, Gmail's "Delivery Status Notification"), so each piece has a
fallback: the recipient from ``X-Failed-Recipients`` or the text, the status code
from the text, the reported mail's Message-ID from the attached original
(``message/rfc822`` or ``text/rfc822-headers``), else from In-Reply-To/References,
else from our own Message-ID shape anywhere in the body.

A bounce never opens a case: it is recorded on the case of the mail it reports on
(``delivery_failed`` / ``delivery_delayed`` events), a hard (5.x.x) failure
suppresses further mail to that address for ``[loop_protection] bounce_suppress``,
and the case's manager gets a short notice (``notify_manager_of_delivery_failure``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, message_from_string
from email.message import Message as EmailMessage
from email.utils import getaddresses

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.db.models import Case, Message, Outbox, Suppression, ThreadRef
from mailbot.message import Inbound
from mailbot.managers import notify_manager_plain
from mailbot.store.cases import add_event

log = logging.getLogger("mailbot.bounces")

_MAX_PARTS = 200  # a report has a handful; never walk a hostile tree without bound
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_REPLY = re.compile(r"\b([45]\d\d)[ -]")
_ID = re.compile(r"<([^<>\s]{1,900}@[^<>\s]{1,255})>")
_MESSAGE_ID_LINE = re.compile(r"^message-id:\s*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class RecipientStatus:
    """One recipient's line of a report: who, what happened, the code and the server's words."""

    recipient: str
    action: str  # failed | delayed | delivered | relayed | expanded | "" when unknown
    status: str  # "5.1.1", or "" when the report gave none
    diagnostic: str = ""

    @property
    def delayed(self) -> bool:
        return self.action == "delayed" or (self.action != "failed" and self.status.startswith("4"))

    @property
    def hard(self) -> bool:
        """A permanent failure (5.x.x): writing again to this address cannot help.

        Only a status code says so; a report without one (or a postmaster's chatty
        answer threaded on our mail) never suppresses an address.
        """
        return self.status.startswith("5")


@dataclass
class DeliveryReport:
    """What a bounce says: per-recipient results and the Message-IDs it may be about, best first."""

    standard: bool
    recipients: list[RecipientStatus] = field(default_factory=list)
    original_ids: list[str] = field(default_factory=list)


def _text(value: object) -> str:
    return " ".join(str(value or "").split())


def _address(value: str) -> str:
    """``rfc822; <a@b>`` → ``a@b``."""
    _, _, addr = value.partition(";") if ";" in value else ("", "", value)
    found = [a for _, a in getaddresses([addr.strip()]) if "@" in a]
    return (found[0] if found else addr.strip().strip("<>")).lower()[:320]


def _parts(message: EmailMessage) -> list[EmailMessage]:
    parts: list[EmailMessage] = []
    stack = [message]
    while stack and len(parts) < _MAX_PARTS:
        part = stack.pop(0)
        parts.append(part)
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            stack.extend(p for p in payload if isinstance(p, EmailMessage))
    return parts


def _status_blocks(part: EmailMessage) -> list[EmailMessage]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, EmailMessage)]
    # Some servers send it base64-encoded or otherwise unparsed: parse the blocks ourselves.
    data = part.get_payload(decode=True)
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(payload or "")
    return [message_from_string(block + "\n") for block in re.split(r"\r?\n\s*\r?\n", text)
            if block.strip()]


def _original_id(part: EmailMessage) -> str | None:
    """The Message-ID of an attached original (message/rfc822 or text/rfc822-headers)."""
    kind = part.get_content_type()
    if kind == "message/rfc822":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, EmailMessage):
            value = inner.get("Message-ID")
            found = _ID.search(str(value)) if value else None
            if found:
                return f"<{found.group(1)}>"
        return None
    data = part.get_payload(decode=True)
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(part.get_payload())
    found = _MESSAGE_ID_LINE.search(text)
    return found.group(1) if found else None


def read_report(raw: bytes, inbound: Inbound, our_domain: str) -> DeliveryReport:
    """Read a bounce (never raises: a report we cannot read is still recorded as a bounce)."""
    try:
        return _read(raw, inbound, our_domain)
    except Exception as exc:  # a malformed report must not quarantine the bounce
        log.warning("bounce %s: report unreadable (%s); using the headers only",
                    inbound.message_id, exc)
        return DeliveryReport(False, original_ids=inbound.all_references())


def _read(raw: bytes, inbound: Inbound, our_domain: str) -> DeliveryReport:
    message = message_from_bytes(raw)
    parts = _parts(message)
    report = DeliveryReport(standard=False)
    ids: dict[str, None] = {}
    for part in parts:
        kind = part.get_content_type()
        if kind in ("message/delivery-status", "message/global-delivery-status"):
            report.standard = True
            for block in _status_blocks(part)[1:] or _status_blocks(part):
                recipient = block.get("Final-Recipient") or block.get("Original-Recipient")
                if recipient is None:
                    continue
                status = _STATUS.search(_text(block.get("Status")))
                report.recipients.append(RecipientStatus(
                    recipient=_address(_text(recipient)),
                    action=_text(block.get("Action")).lower()[:20],
                    status=status.group(0) if status else "",
                    diagnostic=_text(block.get("Diagnostic-Code"))[:500],
                ))
        elif kind in ("message/rfc822", "text/rfc822-headers", "message/global-headers"):
            original = _original_id(part)
            if original:
                ids.setdefault(original, None)
    for ref in inbound.all_references():
        ids.setdefault(ref, None)
    body = inbound.text or ""
    if our_domain:
        ours = re.compile(r"<([^<>\s@]{1,200}@" + re.escape(our_domain) + r")>", re.IGNORECASE)
        for found in ours.finditer(body):
            ids.setdefault(f"<{found.group(1)}>", None)
    for found in _MESSAGE_ID_LINE.finditer(body):
        ids.setdefault(found.group(1), None)
    report.original_ids = list(ids)
    if not report.recipients:
        report.recipients = _free_text_recipients(inbound, body)
    return report


def _free_text_recipients(inbound: Inbound, body: str) -> list[RecipientStatus]:
    """Non-standard bounces: X-Failed-Recipients (Exim, Gmail) and the first status code in the text."""
    status = _STATUS.search(body)
    code = status.group(0) if status else ""
    if not code and (reply := _SMTP_REPLY.search(body)):
        code = f"{reply.group(1)[0]}.0.0"
    delayed = bool(re.search(r"delay|still being retried|will retry|temporar", body, re.I))
    action = "delayed" if delayed and not code.startswith("5") else "failed"
    recipients = [_address(v) for value in inbound.headers.get("x-failed-recipients", [])
                  for v in value.split(",") if "@" in v]
    line = next((ln.strip() for ln in body.splitlines() if code and code in ln), "")
    return [RecipientStatus(r, action, code, line[:500]) for r in dict.fromkeys(recipients)] or [
        RecipientStatus("", action, code, line[:500])]


@dataclass(frozen=True)
class ReportedMail:
    """The mail a bounce is about: its case and, when it was one of ours, the outbox row."""

    case: Case
    outbox: Outbox | None
    message_id: str


def find_reported(session: Session, report: DeliveryReport) -> ReportedMail | None:
    """Match the report's candidate ids against our outgoing mail, then against any mail of a case."""
    ids = report.original_ids[:50]
    if not ids:
        return None
    rows = {row.message_id: row for row in session.scalars(
        select(Outbox).where(Outbox.message_id.in_(ids)))}
    for message_id in ids:
        row = rows.get(message_id)
        if row is not None and row.case_id is not None:
            case = session.get(Case, row.case_id)
            if case is not None:
                return ReportedMail(case, row, message_id)
    refs = {ref.message_id: ref.case_id for ref in session.scalars(
        select(ThreadRef).where(ThreadRef.message_id.in_(ids)))}
    for message_id in ids:
        if message_id in refs:
            case = session.get(Case, refs[message_id])
            if case is not None:
                return ReportedMail(case, None, message_id)
    return None


def record(session: Session, config: Config, case: Case, message: Message,
           report: DeliveryReport, reported: ReportedMail | None, at: datetime) -> None:
    """Write the report onto its case: one event per recipient, suppressions, the manager seam."""
    fallback = reported.outbox.to_addrs if reported and reported.outbox else []
    for line in report.recipients:
        recipients = [line.recipient] if line.recipient else [
            _address(a) for a in fallback] or [""]
        for recipient in recipients:
            kind = "delivery_delayed" if line.delayed else "delivery_failed"
            what = "delayed" if line.delayed else "failed"
            reason = (f"delivery to {recipient or 'unknown recipient'} {what}: "
                      f"{line.status or 'no status code'}"
                      + (f" ({line.diagnostic[:200]})" if line.diagnostic else ""))
            add_event(session, case, kind, actor="bounce", at=at, message_pk=message.id,
                      recipient=recipient, status=line.status, action=line.action,
                      diagnostic=line.diagnostic,
                      reported_message_id=reported.message_id if reported else None,
                      mail_kind=reported.outbox.kind if reported and reported.outbox else None,
                      reason=reason)
            if line.hard and recipient:
                suppress(session, config, case, recipient, reason, at)
            notify_manager_of_delivery_failure(session, config, case, message, recipient, line,
                                               at)


def suppress(session: Session, config: Config, case: Case, address: str, reason: str,
             at: datetime) -> None:
    """Stop mail to ``address`` until ``bounce_suppress`` has passed (extended on a new hard bounce)."""
    until = at + config.loop_protection.bounce_suppress_td
    row = session.scalar(select(Suppression).where(Suppression.email == address))
    if row is None:
        session.add(Suppression(email=address, reason=reason[:2000], case_id=case.id,
                                until=until, created_at=at))
    elif row.until < until:
        row.until, row.reason, row.case_id = until, reason[:2000], case.id
    add_event(session, case, "address_suppressed", actor="mailbot", at=at, email=address,
              until=until.isoformat(), reason=f"hard bounce: no mail to {address} until "
              f"{until.isoformat()}")


def suppressed(session: Session, addresses: list[str], now: datetime) -> dict[str, str]:
    """Addresses among ``addresses`` that mail must not go to now, with the reason.

    The one place the bounce suppression is checked: the outbox worker asks it
    before every send.
    """
    wanted = {_address(a): a for a in addresses if a}
    if not wanted:
        return {}
    rows = session.scalars(select(Suppression).where(Suppression.email.in_(list(wanted)),
                                                     Suppression.until > now))
    return {row.email: f"{row.email} bounced hard ({row.reason}); suppressed until "
            f"{row.until.isoformat()}" for row in rows}


def notify_manager_of_delivery_failure(session: Session, config: Config, case: Case,
                                       message: Message, recipient: str, line: RecipientStatus,
                                       at: datetime) -> None:
    """Tell the case's manager that mail to the customer did not arrive (or is delayed)."""
    what = "is delayed" if line.delayed else "could not be delivered"
    details = [f"Mail to {recipient or 'the customer'} {what}.",
               f"Status: {line.status or 'none given'}"]
    if line.diagnostic:
        details.append(f"The receiving server said: {line.diagnostic[:300]}")
    notify_manager_plain(session, config, case, kind="delivery_failure",
                         cause=f"{message.message_id}:{recipient}", subject=
                         f"Delivery problem on {case.token}: {recipient}", lines=details, now=at)
