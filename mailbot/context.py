"""What travels with a message through the pipeline: where it came from, what became of it,
and the long-lived things every stage needs (config, blob store, clock, calendars, secret)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailbot.clock import Clock
from mailbot.config import Config
from mailbot.schedule.deadlines import Deadlines
from mailbot.store.blobs import BlobStore


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
    secret: bytes | None = None  # signs notifications to managers (staff authentication)
    # History from an older system (``mailbot import``): recorded on cases, never answered —
    # no acknowledgement, notification, relay, #command, deadline or job (mailbot.backfill).
    historic: bool = False
