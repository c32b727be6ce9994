"""An IMAP folder read for ``mailbot import``: opened with EXAMINE, never changed.

The folder may be someone's archive, or the very folder the daemon watches; either
way the import only looks. EXAMINE makes the server refuse any change and leaves
``\\Recent`` alone, messages are read with ``BODY.PEEK[]`` (inherited), and the
methods that would flag or move mail refuse outright, so no caller can slip.
"""

from __future__ import annotations

from datetime import date

from mailbot.errors import MailbotError
from mailbot.fetch import Fetched
from mailbot.fetch.imap import ImapSource


class ReadOnlyViolation(MailbotError):
    """Raised when code asks the read-only source to flag or move mail (a bug, never normal)."""


class ReadOnlyImapSource(ImapSource):
    readonly = True

    def search(self, after_uid: int, since: date | None = None) -> list[int]:
        """UIDs above ``after_uid`` (received on or after ``since``), ascending.

        ``SEARCH ALL`` on a first pass, ``UID n:*`` when resuming; ``SINCE`` compares
        the server's INTERNALDATE by calendar day, as IMAP defines it.
        """
        criteria: list[object] = ["ALL"] if after_uid == 0 else ["UID", f"{after_uid + 1}:*"]
        if since is not None:
            criteria += ["SINCE", since]
        # "UID n:*" always matches the newest message even when its UID is below n.
        return sorted(uid for uid in self.client.search(criteria) if uid > after_uid)

    def mark_done(self, items: list[Fetched]) -> None:
        raise ReadOnlyViolation(f"{self.name}/{self.folder} is read-only: not flagging mail")

    def mark_uids_done(self, uids: list[int]) -> None:
        raise ReadOnlyViolation(f"{self.name}/{self.folder} is read-only: not flagging mail")

    def quarantine(self, items: list[Fetched]) -> str | None:
        raise ReadOnlyViolation(f"{self.name}/{self.folder} is read-only: not moving mail")

    def quarantine_uids(self, uids: list[int]) -> str | None:
        raise ReadOnlyViolation(f"{self.name}/{self.folder} is read-only: not moving mail")
