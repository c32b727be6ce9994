"""What the pipeline knows about one inbound message, and what it decided.

``Inbound`` is built by ``mailbot.parse`` from raw bytes and then only read; the
stages after it add their findings to ``facts`` so that every decision can be
written to the case's event log with its reason.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Address:
    """One mailbox from an address header; ``email`` is lower-cased for matching."""

    email: str
    name: str = ""

    def formatted(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


@dataclass(frozen=True)
class Attachment:
    """An attachment's decoded bytes with a name that is safe to show, never a path."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class Inbound:
    """A parsed inbound message.

    ``content_hash`` is the sha256 of the message without its trace headers
    (Received, Delivered-To, …) so the same mail delivered twice, which differs only
    in those, is recognised as one; ``raw_sha256`` addresses the exact bytes kept.
    """

    raw_sha256: str
    content_hash: str
    message_id: str
    message_id_synthesized: bool
    subject: str
    from_addr: Address | None
    to: list[Address]
    cc: list[Address]
    reply_to: list[Address]
    date: datetime | None
    in_reply_to: list[str]
    references: list[str]
    headers: dict[str, list[str]]
    text: str
    html: str
    attachments: list[Attachment]
    defects: list[str]
    size: int
    received_at: datetime | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    # The raw bytes gzipped for the blob store, when a parse worker already did it.
    raw_gzip: bytes | None = None

    @property
    def idempotency_key(self) -> str:
        return f"{self.message_id}\x00{self.content_hash}"

    def header(self, name: str) -> str | None:
        """First value of a header (case-insensitive), or None when absent."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def all_references(self) -> list[str]:
        """In-Reply-To and References, in order, without repeats."""
        seen: dict[str, None] = {}
        for ref in [*self.in_reply_to, *self.references]:
            seen.setdefault(ref, None)
        return list(seen)


class Disposition(enum.Enum):
    """What classification decided should happen to a message."""

    ACKNOWLEDGE = "acknowledge"  # human mail from a customer: record, answer
    RECORD_ONLY = "record_only"  # automatic mail: record on its case, never answer
    DROP = "drop"  # our own mail coming back: record nothing new


@dataclass(frozen=True)
class RuleHit:
    """One classification rule that matched, with the reason written to the event log."""

    rule: str
    reason: str
