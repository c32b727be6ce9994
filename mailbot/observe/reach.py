"""Which mailboxes answer: the IMAP half of ``/healthz``.

A watcher reports each successful contact (login, a drained pass) and each
connection failure. What matters to an operator is not the last byte received — an
IDLE connection may rightly be silent for half an hour — but how long a mailbox has
been *failing*: a mailbox is down from its first failure after its last success
until it answers again, and ``/healthz`` fails once that lasts longer than
``[metrics] imap_unreachable_after``. Times come from the daemon's clock, so tests
move it instead of waiting.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class MailboxReach:
    mailbox: str
    up: bool
    since: datetime  # up: last successful contact; down: first failure since then
    error: str = ""


class Reachability:
    """Per-mailbox up/down state, shared by the watcher threads and the HTTP thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, MailboxReach] = {}

    def reached(self, mailbox: str, now: datetime) -> None:
        with self._lock:
            self._state[mailbox] = MailboxReach(mailbox, True, now)

    def failed(self, mailbox: str, now: datetime, error: str) -> None:
        """Record a failure; a mailbox already down keeps the start of its outage."""
        with self._lock:
            current = self._state.get(mailbox)
            since = current.since if current is not None and not current.up else now
            self._state[mailbox] = MailboxReach(mailbox, False, since, error)

    def forget(self, mailbox: str) -> None:
        """A mailbox removed from the config (reload) is nobody's outage."""
        with self._lock:
            self._state.pop(mailbox, None)

    def snapshot(self) -> list[MailboxReach]:
        with self._lock:
            return sorted(self._state.values(), key=lambda reach: reach.mailbox)

    def unreachable(self, now: datetime, longer_than: timedelta) -> list[MailboxReach]:
        """Mailboxes down for longer than ``longer_than`` at ``now``."""
        return [reach for reach in self.snapshot()
                if not reach.up and now - reach.since > longer_than]
