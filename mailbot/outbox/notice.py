"""Telling the admin that a template is broken — once per file content, through the outbox.

A broken template never stops a customer's mail (render.py falls back), but the
admin must learn about it without reading logs. The notice:

- is queued as an ordinary outbox row (so it is retried, recorded and threaded
  like any mail) with no case (``case_id`` NULL) and ``kind`` ``template_error``;
- is deduplicated explicitly on (kind, cause) with cause = hash of (file, content
  hash): SQL does not enforce the unique (case_id, kind, cause) key when case_id is
  NULL, and the admin should get one mail per broken version, not one per mail;
- is plain text built here in code, never from a template, so a broken template
  cannot break the mail that reports it.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.db.models import Outbox
from mailbot.outbox.queue import make_message_id
from mailbot.outbox.render import Rendered, TemplateFailure, one_line

log = logging.getLogger("mailbot.outbox")

NOTICE_KIND = "template_error"


def notice_cause(failure: TemplateFailure) -> str:
    """One cause per (file, content): a fixed-then-rebroken file is reported again."""
    key = f"{failure.path}\0{failure.content_sha256}".encode()
    return "template:" + hashlib.sha256(key).hexdigest()[:40]


def queue_template_notice(session: Session, config: Config, failure: TemplateFailure,
                          now: datetime) -> Outbox | None:
    """Queue the admin's notice unless this version of the file was already reported.

    Returns None when no admin address is configured or the notice exists already.
    """
    admin = config.templates.admin_address
    if not admin:
        return None
    cause = notice_cause(failure)
    existing = session.scalar(
        select(Outbox.id).where(Outbox.case_id.is_(None), Outbox.kind == NOTICE_KIND,
                                Outbox.cause == cause)
    )
    if existing is not None:
        return None
    row = Outbox(
        case_id=None, kind=NOTICE_KIND, cause=cause,
        message_id=make_message_id(NOTICE_KIND, None, config.smtp.from_address.partition("@")[2]),
        mailbox=None, to_addrs=[admin], rcpt=admin.lower(), cc_addrs=[], in_reply_to=None, references=[],
        language="en",
        context={"path": failure.path, "line": failure.line, "message": failure.message,
                 "content_sha256": failure.content_sha256, "at": now.isoformat()},
        status="pending", attempts=0, next_attempt_at=now, created_at=now,
    )
    session.add(row)
    session.flush()
    log.info("template failure of %s queued for %s", failure.location(), admin)
    return row


def render_notice(context: dict[str, Any]) -> Rendered:
    """The notice as plain text: no Jinja2, nothing an admin edit can break."""
    path = str(context.get("path", "?"))
    line = context.get("line")
    where = f"{path}:{line}" if line else path
    text = (
        "A mailbot template could not be used.\n\n"
        f"File:    {path}\n"
        f"Line:    {line or '-'}\n"
        f"Problem: {context.get('message', '?')}\n"
        f"Since:   {context.get('at', '?')}\n\n"
        "Mail is still going out: mailbot uses the last version of this file that\n"
        "worked, or the packaged default. Fix the file, then run\n\n"
        "    mailbot templates check\n\n"
        "to confirm. You get this message once per version of the file.\n"
    )
    return Rendered(subject=one_line(f"mailbot: template error in {where}")[:200], text=text,
                    html=None, source="(built-in notice)")
