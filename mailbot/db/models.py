"""The schema: cases, their messages and participants, the audit log, the outbox.

Every table that the pipeline writes has a natural unique key, so that processing a
message twice (a crash between commit and IMAP flag, the same mail delivered twice)
is a constraint the database enforces, not a hope. Times are stored in UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out — on SQLite too, which drops tzinfo."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class MailboxState(Base):
    """Where fetching stopped in one folder: the checkpoint, not the ``\\Seen`` flag."""

    __tablename__ = "mailbox_state"
    __table_args__ = (UniqueConstraint("mailbox", "folder"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime]


class Counter(Base):
    """Gapless sequences (case numbers) that roll back with the transaction that used them."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(BigInteger, unique=True)
    token: Mapped[str] = mapped_column(String(40), unique=True)
    subject: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    customer_email: Mapped[str] = mapped_column(String(320), index=True)
    customer_name: Mapped[str] = mapped_column(String(200), default="")
    manager_email: Mapped[str | None] = mapped_column(String(320))
    service_level: Mapped[str] = mapped_column(String(50))
    language: Mapped[str] = mapped_column(String(10))
    timezone: Mapped[str] = mapped_column(String(64))
    timezone_source: Mapped[str] = mapped_column(String(30), default="default")
    opened_at: Mapped[datetime]
    preliminary_due: Mapped[datetime | None]
    detailed_due: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    detailed_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    last_customer_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    # Added by 0003_sla: the customer's organization (reports) and when #wait paused the clock.
    organization: Mapped[str | None] = mapped_column(String(200))
    paused_at: Mapped[datetime | None]
    # Added by 0005_customers: was the sender in the customer directory (or at an
    # [[organizations]] address) when the case opened? Older cases count as registered.
    registered: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())

    participants: Mapped[list[Participant]] = relationship(
        back_populates="case", order_by="Participant.id"
    )
    messages: Mapped[list[Message]] = relationship(back_populates="case", order_by="Message.id")
    events: Mapped[list[Event]] = relationship(back_populates="case", order_by="Event.id")


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("case_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))  # customer | cc | manager
    added_at: Mapped[datetime]

    case: Mapped[Case] = relationship(back_populates="participants")


class Message(Base):
    """One inbound or outbound mail of a case, pointing at its raw bytes by sha256."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("message_id", "content_hash", name="uq_messages_idempotency"),
        Index("ix_messages_pending_imap", "mailbox", "imap_done"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    classification: Mapped[str] = mapped_column(String(30))
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    raw_sha256: Mapped[str] = mapped_column(String(64))
    mailbox: Mapped[str | None] = mapped_column(String(100))
    folder: Mapped[str | None] = mapped_column(String(255))
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    imap_done: Mapped[bool] = mapped_column(Boolean, default=True)
    from_email: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    to_addrs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cc_addrs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    date_header: Mapped[datetime | None]
    received_at: Mapped[datetime]
    body_text: Mapped[str] = mapped_column(Text, default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]

    case: Mapped[Case | None] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.id"
    )


class ThreadRef(Base):
    """Every Message-ID a case has seen or sent: what In-Reply-To/References thread on."""

    __tablename__ = "thread_refs"

    message_id: Mapped[str] = mapped_column(String(998), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)


class Attachment(Base):
    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))

    message: Mapped[Message] = relationship(back_populates="attachments")


class Event(Base):
    """The append-only audit log: what happened to a case, who did it, and why."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(50))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    case: Mapped[Case | None] = relationship(back_populates="events")


class Outbox(Base):
    """A mail to send, written in the same transaction as the event that caused it.

    ``(case_id, kind, cause)`` is unique so a re-processed message cannot enqueue the
    same reply twice; ``message_id`` is fixed here so a resend after a crash is
    recognisably the same mail. The body is rendered at send time from ``context``.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("case_id", "kind", "cause", name="uq_outbox_cause"),
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_rcpt", "rcpt", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    kind: Mapped[str] = mapped_column(String(40))
    cause: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    mailbox: Mapped[str | None] = mapped_column(String(100))
    to_addrs: Mapped[list[Any]] = mapped_column(JSON)
    # The first To address, lowercased: loop protection counts acks per address by it.
    rcpt: Mapped[str | None] = mapped_column(String(320))
    cc_addrs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[Any]] = mapped_column(JSON, default=list)
    language: Mapped[str] = mapped_column(String(10), default="en")
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|sending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class Quarantine(Base):
    """Mail that could not be processed, kept raw with the reason, for a retry after a fix."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    folder: Mapped[str] = mapped_column(String(255), default="")
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    uid: Mapped[int | None] = mapped_column(BigInteger)
    raw_sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="held")  # held | retried
    created_at: Mapped[datetime]
    # Added by 0002_hostile_mail: the mailbox's time of the mail (so a retry keeps its
    # deadlines), where it was moved on the IMAP side, and what retries did.
    received_at: Mapped[datetime | None]
    moved_to: Mapped[str | None] = mapped_column(String(255))
    retries: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(Text)


class Suppression(Base):
    """An address that bounced hard: no mail goes to it until ``until`` (a bounce loop otherwise)."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    reason: Mapped[str] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    until: Mapped[datetime]
    created_at: Mapped[datetime]


class Job(Base):
    """Something to do at a time: an SLA reminder, an escalation, a follow-up.

    Rows, not timers: they survive restarts, and a daemon claims a due row (SKIP
    LOCKED on PostgreSQL, one writer on SQLite) before acting on it. ``key`` is
    unique — scheduling the same job twice is a no-op — and names the deadline it
    belongs to, so a recomputed deadline makes a new job and the old one is
    cancelled rather than fired.
    """

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|done|cancelled
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    claimed_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(Text)


class MailboxLease(Base):
    """Which daemon may poll a mailbox, and until when (DESIGN.md, "Scale").

    One row per mailbox: the holder renews ``expires_at`` while it watches and deletes
    the row on a clean stop; a holder that was killed simply stops renewing, and any
    other daemon takes the row over once it has expired. See ``mailbot.lease``.
    """

    __tablename__ = "mailbox_leases"

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100), unique=True)
    holder: Mapped[str] = mapped_column(String(200))  # hostname:pid:random
    expires_at: Mapped[datetime]
    taken_at: Mapped[datetime]


class Customer(Base):
    """One entry of the customer directory (``mailbot customers import``).

    ``email`` is unique and lowercased, as the pipeline compares senders, so a new
    case finds its customer with one indexed lookup. Every setting may be empty:
    then the organization's, the inferred one or the default applies, as for a
    sender who is not in the directory. ``organization`` is a name; when it is the
    name of an ``[[organizations]]`` entry, that entry's manager and settings apply.
    """

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    organization: Mapped[str | None] = mapped_column(String(200))
    timezone: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(10))
    service_level: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
