"""fetch: the first stage — get raw messages out of a mailbox, and mark them done after commit.

``MailSource`` is the seam: an IMAP folder in production (``fetch.imap``), a
Maildir for the demo and for hosts that deliver locally (``fetch.maildir``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from mailbot.context import Delivery

__all__ = ["Delivery", "Fetched", "MailSource"]


@dataclass(frozen=True)
class Fetched:
    raw: bytes
    delivery: Delivery
    ref: object = None  # the source's own handle (a Maildir path); IMAP uses delivery.uid


class MailSource(Protocol):
    """A folder of incoming mail.

    ``uidvalidity`` is None for sources without IMAP UIDs; then no checkpoint is kept
    and the idempotency key alone prevents reprocessing. ``batches(after_uid)``
    yields bounded lists of messages newer than the checkpoint, oldest first;
    ``mark_done`` and ``quarantine`` are called only after the batch's transaction
    committed; ``wait`` blocks until new mail may be there (IDLE), the poll interval
    passed, or ``stop`` was set.
    """

    name: str
    folder: str
    uidvalidity: int | None

    def open(self) -> None: ...

    def batches(self, after_uid: int) -> Iterator[list[Fetched]]: ...

    def mark_done(self, items: list[Fetched]) -> None: ...

    def quarantine(self, items: list[Fetched]) -> str | None:
        """Move quarantined mail out of the watched folder (never delete); returns where to."""
        ...

    def wait(self, stop: threading.Event) -> None: ...

    def close(self) -> None: ...
