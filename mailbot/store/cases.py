"""Domain operations on cases, always inside the caller's transaction.

Nothing here commits: the pipeline opens one transaction per batch of messages and
everything a message causes (its case, its participants, its events, its outbox
rows, the IMAP checkpoint) commits or rolls back together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from mailbot.db.models import Case, Counter, Event, Participant, ThreadRef
from mailbot.tokens import format_token


def next_number(session: Session, name: str = "case") -> int:
    """Take the next value of a counter.

    The counter row is updated in the caller's transaction, so a rolled-back case
    gives its number back: customers never see gaps, and two writers serialise on
    the row instead of colliding on the unique constraint.

    The very first number is the one race a plain INSERT would lose: two daemons on
    PostgreSQL both find no row and both insert it, and one dies of IntegrityError.
    So the row is created with ``ON CONFLICT DO NOTHING`` (the loser waits for the
    winner's commit and inserts nothing) and the number always comes from the UPDATE.
    """
    bump = (update(Counter).where(Counter.name == name).values(value=Counter.value + 1)
            .returning(Counter.value))
    updated = session.execute(bump).scalar_one_or_none()
    if updated is not None:
        return int(updated)
    # A database that had cases before the counter existed continues after them.
    start = (session.scalar(select(func.max(Case.number))) or 0) + 1 if name == "case" else 1
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(Counter).values(name=name, value=start - 1)
                    .on_conflict_do_nothing(index_elements=["name"]))
    return int(session.execute(bump).scalar_one())


def open_case(
    session: Session,
    *,
    prefix: str,
    subject: str,
    mailbox: str,
    customer_email: str,
    customer_name: str,
    service_level: str,
    language: str,
    timezone: str,
    timezone_source: str,
    opened_at: datetime,
    preliminary_due: datetime | None,
    detailed_due: datetime | None,
) -> Case:
    number = next_number(session)
    case = Case(
        number=number,
        token=format_token(prefix, number),
        subject=subject,
        status="open",
        mailbox=mailbox,
        customer_email=customer_email,
        customer_name=customer_name,
        service_level=service_level,
        language=language,
        timezone=timezone,
        timezone_source=timezone_source,
        opened_at=opened_at,
        preliminary_due=preliminary_due,
        detailed_due=detailed_due,
        last_customer_at=opened_at,
        updated_at=opened_at,
    )
    session.add(case)
    session.flush()
    return case


def add_participant(
    session: Session, case: Case, email: str, name: str, role: str, at: datetime,
    *, new_case: bool = False,
) -> Participant | None:
    """Add someone to a case unless they already are on it; returns the new row or None.

    ``new_case``: the case was opened in this transaction, so nobody is on it yet and
    the lookup (a round trip per participant on the ingest path) is skipped.
    """
    if not new_case:
        existing = session.scalar(
            select(Participant.id).where(Participant.case_id == case.id,
                                         Participant.email == email)
        )
        if existing is not None:
            return None
    participant = Participant(case_id=case.id, email=email, name=name, role=role, added_at=at)
    session.add(participant)
    return participant


def is_participant(session: Session, case_id: int, email: str) -> bool:
    return (
        session.scalar(
            select(Participant.id).where(Participant.case_id == case_id, Participant.email == email)
        )
        is not None
    )


def add_event(
    session: Session,
    case: Case | None,
    kind: str,
    *,
    actor: str,
    at: datetime,
    message_pk: int | None = None,
    **detail: Any,
) -> Event:
    """Append to the audit log. Details are plain JSON: the reason, not the raw data."""
    event = Event(
        case_id=case.id if case is not None else None,
        message_pk=message_pk,
        at=at,
        actor=actor,
        kind=kind,
        detail=detail,
    )
    session.add(event)
    return event


def add_thread_refs(session: Session, case_id: int, message_ids: list[str]) -> None:
    """Remember Message-IDs of a case so replies naming them thread here."""
    for message_id in dict.fromkeys(message_ids):
        if not message_id:
            continue
        exists = session.get(ThreadRef, (message_id, case_id))
        if exists is None:
            session.add(ThreadRef(message_id=message_id, case_id=case_id))


def cases_referenced(session: Session, message_ids: list[str]) -> list[int]:
    """Case ids that own any of these Message-IDs, in the order the ids were given."""
    if not message_ids:
        return []
    rows = session.execute(
        select(ThreadRef.message_id, ThreadRef.case_id).where(ThreadRef.message_id.in_(message_ids))
    ).all()
    by_id: dict[str, list[int]] = {}
    for message_id, case_id in rows:
        by_id.setdefault(message_id, []).append(case_id)
    ordered: dict[int, None] = {}
    for message_id in message_ids:
        for case_id in sorted(by_id.get(message_id, [])):
            ordered.setdefault(case_id, None)
    return list(ordered)


def case_by_number(session: Session, number: int) -> Case | None:
    return session.scalar(select(Case).where(Case.number == number))
