"""compose: a rendered outbox row → a MIME message, with the headers that prevent loops.

Built with the standard library's ``email`` package (policy SMTP: CRLF, folded,
RFC 2047-encoded). Header values come from our database and config, and every one
that could carry customer text (the subject, display names) is reduced to a single
line first, so no variable can inject a header.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from mailbot.db.models import Outbox
from mailbot.outbox.render import Rendered
from mailbot.tokens import strip_reply_prefixes, subject_with_token

# RFC 3834: what we send on our own initiative says so, and asks other robots not to answer.
AUTO_SUBMITTED = {
    "ack": "auto-replied",
    "ack_unregistered": "auto-replied",
    "followup": "auto-generated",
    "reminder": "auto-generated",
    "escalation": "auto-generated",
    "digest": "auto-generated",
    "template_error": "auto-generated",
    # Mail to managers: their out-of-office must not answer it (and be taken for a reply).
    "manager_new_case": "auto-generated",
    "manager_update": "auto-generated",
    "command_error": "auto-replied",
    "delivery_failure": "auto-generated",
}


def _one_line(text: str) -> str:
    return " ".join("".join(ch if ch >= " " else " " for ch in text).split())


def compose(
    row: Outbox,
    rendered: Rendered,
    *,
    from_address: str,
    from_name: str,
    token_prefix: str,
    case_number: int | None,
    now: datetime,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> EmailMessage:
    """``attachments``: (safe file name, content type, bytes) to attach, e.g. a manager's
    files relayed to the customer."""
    message = EmailMessage(policy=SMTP)
    local, _, domain = from_address.partition("@")
    message["From"] = HeaderAddress(display_name=_one_line(from_name), username=local, domain=domain)
    message["To"] = ", ".join(row.to_addrs)
    if row.cc_addrs:
        message["Cc"] = ", ".join(row.cc_addrs)
    subject = _one_line(rendered.subject)
    if case_number is not None:
        # The template decides whether this reads as a reply ("Re: …"); code owns the token.
        is_reply = strip_reply_prefixes(subject) != subject.strip()
        subject = subject_with_token(subject, token_prefix, case_number, reply=is_reply)
    message["Subject"] = subject or "(no subject)"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = row.message_id
    if row.in_reply_to:
        message["In-Reply-To"] = row.in_reply_to
    references = [ref for ref in row.references if ref]
    if references:
        message["References"] = " ".join(references)
    auto = AUTO_SUBMITTED.get(row.kind)
    if auto:
        message["Auto-Submitted"] = auto
        message["X-Auto-Response-Suppress"] = "All"
    reply_to = row.context.get("reply_to") if isinstance(row.context, dict) else None
    if reply_to:
        # Mail to managers: their answer goes to a signed address that proves it is theirs.
        message["Reply-To"] = _one_line(str(reply_to))
    message["X-Loop"] = from_address
    message["X-Mailbot-Kind"] = row.kind
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    if rendered.html is not None:
        message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    for filename, content_type, data in attachments:
        maintype, _, subtype = content_type.partition("/")
        if not subtype or maintype == "multipart":
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message
