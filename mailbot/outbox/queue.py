"""Putting mail into the outbox and taking it out again.

A row is written in the transaction of the event that caused it, keyed by
(case, kind, cause): processing the same message twice cannot enqueue its reply
twice. Its Message-ID is fixed here, so if the process dies between the SMTP
server's "250" and our commit, the resend is recognisably the same mail.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from mailbot.db.models import Case, Outbox, ThreadRef

CLAIM_LEASE = timedelta(minutes=5)
#: ``session.info`` key: (causes checked, {(case_id, kind, cause) already queued}), set by a
#: caller that checked a whole batch in one query (the scheduler tick).
PRECHECKED_CAUSES = "mailbot.outbox.prechecked"


def make_message_id(kind: str, case: Case | None, domain: str) -> str:
    """A Message-ID on our domain that says what it is, unguessable in its tail."""
    token = case.token.strip("[]").lower() if case is not None else "x"
    return f"<{token}.{kind}.{secrets.token_hex(8)}@{domain}>"


def enqueue(
    session: Session,
    *,
    case: Case | None,
    kind: str,
    cause: str,
    to: list[str],
    context: dict[str, Any],
    now: datetime,
    domain: str,
    cc: list[str] | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    language: str = "en",
    message_id: str | None = None,
    check_existing: bool = True,
) -> Outbox | None:
    """Queue a mail unless the same (case, kind, cause) is already queued; returns the new row.

    Mail about no case (a manager's digest) is deduplicated here too: SQL does not
    enforce a unique key whose case_id is NULL. ``check_existing=False`` is for a
    caller that knows there can be none (a case opened in this very transaction);
    the unique key still guards it.
    """
    prechecked = session.info.get(PRECHECKED_CAUSES)
    if check_existing and prechecked is not None and cause in prechecked[0]:
        if (case.id if case is not None else None, kind, cause) in prechecked[1]:
            return None
        prechecked[1].add((case.id if case is not None else None, kind, cause))
    elif check_existing:
        same_case = Outbox.case_id.is_(None) if case is None else Outbox.case_id == case.id
        existing = session.scalar(
            select(Outbox.id).where(same_case, Outbox.kind == kind, Outbox.cause == cause)
        )
        if existing is not None:
            return None
    row = Outbox(
        case_id=case.id if case is not None else None,
        kind=kind,
        cause=cause,
        message_id=message_id or make_message_id(kind, case, domain),
        mailbox=case.mailbox if case is not None else None,
        to_addrs=to,
        rcpt=to[0].lower()[:320] if to else None,
        cc_addrs=cc or [],
        in_reply_to=in_reply_to,
        references=references or [],
        language=language,
        context=context,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    if case is not None:
        # A Message-ID made just now cannot be known yet: no lookup, no flush.
        session.add(ThreadRef(message_id=row.message_id, case_id=case.id))
    return row


@dataclass(frozen=True)
class Claimed:
    id: int
    attempts: int


def claim_due(session: Session, now: datetime, limit: int = 50,
              lease: timedelta = CLAIM_LEASE) -> list[Claimed]:
    """Take due rows for sending: pending ones whose time has come, and rows a dead
    sender left in 'sending' past their lease. ``SKIP LOCKED`` on PostgreSQL lets
    several daemons share the outbox without waiting on each other.

    ``lease`` (``[smtp] claim_lease``) is how long a row killed mid-send waits before
    it is resent: longer than any send can take, short enough not to delay an ack."""
    query = (
        select(Outbox)
        .where(
            or_(
                and_(Outbox.status == "pending", Outbox.next_attempt_at <= now),
                and_(Outbox.status == "sending", Outbox.claimed_until < now),
            )
        )
        .order_by(Outbox.next_attempt_at, Outbox.id)
        .limit(limit)
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(session.scalars(query))
    for row in rows:
        row.status = "sending"
        row.claimed_until = now + lease
        row.attempts += 1
    return [Claimed(row.id, row.attempts) for row in rows]


def backoff(attempts: int, cap: timedelta) -> timedelta:
    """Exponential: 30 s, 1 min, 2 min … up to ``cap``; jitter is added by the caller."""
    return min(cap, timedelta(seconds=30 * 2 ** max(0, attempts - 1)))
