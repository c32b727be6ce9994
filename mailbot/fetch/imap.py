"""The only imapclient user: an IMAP folder as a mail source.

- Messages are read with ``BODY.PEEK[]`` so fetching never sets ``\\Seen`` by
  itself; ``\\Seen`` (and the move to ``processed_folder``) is set by
  ``mark_done``, which the caller runs only after its transaction committed.
- What is new is decided by UID against the checkpoint kept in the database, not
  by flags: a person reading the mailbox cannot hide mail from mailbot.
- Batches are bounded by count and by bytes (sizes are fetched first), so memory
  stays flat on a mailbox of any size and a 40 MB scan travels alone.
- ``wait`` uses IDLE when the server has it (new mail is seen within a second)
  and falls back to polling; it wakes at least every second to notice ``stop``.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from mailbot.config import MailboxConfig
from mailbot.fetch import Fetched
from mailbot.context import Delivery

log = logging.getLogger("mailbot.imap")

IDLE_RENEW_S = 25 * 60  # RFC 2177: re-issue IDLE before the server's 30-minute timeout
SEEN = b"\\Seen"
DELETED = b"\\Deleted"


class ImapSource:
    readonly = False  # True: the folder is opened with EXAMINE (see fetch.readonly)

    def __init__(self, config: MailboxConfig) -> None:
        self.config = config
        self.name = config.name
        self.folder = config.folder
        self.uidvalidity: int | None = None
        self._client: IMAPClient | None = None
        self._capabilities: set[bytes] = set()
        self._processed_ready = False

    # -- connection --------------------------------------------------------------

    def _create_client(self) -> IMAPClient:
        """The seam tests may override; everything else talks to the returned client."""
        context = ssl.create_default_context() if (self.config.imap_ssl
                                                   or self.config.imap_starttls) else None
        return IMAPClient(self.config.imap_host or "", port=self.config.imap_port,
                          ssl=self.config.imap_ssl, ssl_context=context,
                          timeout=self.config.timeout_s)

    def open(self) -> None:
        client = self._create_client()
        try:
            if self.config.imap_starttls:
                client.starttls(ssl.create_default_context())
            secret = self.config.secret()
            client.login(self.config.username or "", secret.get_secret_value() if secret else "")
            client.normalise_times = False  # keep INTERNALDATE's offset: it is the truth
            selected = client.select_folder(self.folder, readonly=self.readonly)
        except BaseException:
            _quietly_logout(client)
            raise
        self._client = client
        self._capabilities = set(client.capabilities())
        self.uidvalidity = int(selected[b"UIDVALIDITY"])
        self._processed_ready = False

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise IMAPClientError("not connected")
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            _quietly_logout(client)

    def has(self, capability: str) -> bool:
        return capability.encode() in self._capabilities

    # -- reading -------------------------------------------------------------------

    def pending_uids(self, after_uid: int) -> list[int]:
        # "UID n:*" always matches the newest message even when its UID is below n.
        uids = self.client.search(["UID", f"{after_uid + 1}:*"])
        return sorted(uid for uid in uids if uid > after_uid)

    def _take_new_mail_signals(self) -> bool:
        """Pop the EXISTS/RECENT notices imaplib collected between commands.

        Mail that lands while we search is announced in the SEARCH response and kept
        by imaplib; the server does not announce it again once IDLE starts. Cleared
        before each search and checked before each IDLE, so that mail is never left
        waiting for the next one.
        """
        pending = self.client._imap.untagged_responses  # imaplib's store; no public API
        found = pending.pop("EXISTS", None) is not None
        return pending.pop("RECENT", None) is not None or found

    def batches(self, after_uid: int) -> Iterator[list[Fetched]]:
        self._take_new_mail_signals()
        yield from self.batches_of(self.pending_uids(after_uid))

    def batches_of(self, uids: list[int]) -> Iterator[list[Fetched]]:
        """These UIDs (ascending) in batches bounded by ``batch_size`` and ``batch_bytes``."""
        if not uids:
            return
        sizes = {}
        for start in range(0, len(uids), 1000):
            chunk = uids[start:start + 1000]
            for uid, data in self.client.fetch(chunk, ["RFC822.SIZE"]).items():
                sizes[uid] = int(data.get(b"RFC822.SIZE", 0))
        batch: list[int] = []
        total = 0
        for uid in uids:
            if uid not in sizes:  # expunged since the search
                continue
            if batch and (len(batch) >= self.config.batch_size
                          or total + sizes[uid] > self.config.batch_bytes):
                yield self._fetch(batch)
                batch, total = [], 0
            batch.append(uid)
            total += sizes[uid]
        if batch:
            yield self._fetch(batch)

    def _fetch(self, uids: list[int]) -> list[Fetched]:
        response = self.client.fetch(uids, ["BODY.PEEK[]", "INTERNALDATE"])
        items = []
        for uid in uids:
            data = response.get(uid)
            if data is None:
                continue
            raw = data.get(b"BODY[]") or b""
            internal = data.get(b"INTERNALDATE")
            received = _aware(internal) if isinstance(internal, datetime) else None
            items.append(Fetched(raw, Delivery(self.name, self.folder, self.uidvalidity, uid,
                                               received)))
        return items

    # -- after commit --------------------------------------------------------------

    def mark_done(self, items: list[Fetched]) -> None:
        uids = [item.delivery.uid for item in items if item.delivery.uid is not None]
        self.mark_uids_done(uids)

    def mark_uids_done(self, uids: list[int]) -> None:
        if not uids:
            return
        self.client.add_flags(uids, [SEEN], silent=True)
        target = self.config.processed_folder
        if not target:
            return
        if not self._processed_ready:
            self._ensure_folder(target)
            self._processed_ready = True
        self._move(uids, target)

    def quarantine(self, items: list[Fetched]) -> str | None:
        return self.quarantine_uids([i.delivery.uid for i in items if i.delivery.uid is not None])

    def quarantine_uids(self, uids: list[int]) -> str | None:
        """Move quarantined mail to ``quarantine_folder`` (left unread, for a person to look at).

        Returns the folder. The checkpoint already lies past these UIDs, so the move is
        what takes a poison message out of everyone's way; it is never deleted.
        """
        if not uids:
            return None
        target = self.config.quarantine_folder
        self._ensure_folder(target)
        self._move(uids, target)
        return target

    def _ensure_folder(self, folder: str) -> None:
        if not self.client.folder_exists(folder):
            try:
                self.client.create_folder(folder)
            except IMAPClientError:
                if not self.client.folder_exists(folder):  # created meanwhile by someone else
                    raise

    def _move(self, uids: list[int], target: str) -> None:
        """MOVE, else COPY + UID EXPUNGE of just these UIDs, else COPY and leave the original."""
        if self.has("MOVE"):
            self.client.move(uids, target)
        elif self.has("UIDPLUS"):
            self.client.copy(uids, target)
            self.client.add_flags(uids, [DELETED], silent=True)
            self.client.uid_expunge(uids)
        else:
            # Without UID EXPUNGE an EXPUNGE would also remove other people's deleted
            # mail; mailbot never deletes, so it copies and leaves the original.
            self.client.copy(uids, target)

    # -- waiting -------------------------------------------------------------------

    def wait(self, stop: threading.Event) -> None:
        if not (self.config.idle and self.has("IDLE")):
            stop.wait(self.config.poll_interval_s)
            return
        client = self.client
        if self._take_new_mail_signals():
            return
        client.idle()
        started = time.monotonic()
        try:
            while not stop.is_set() and time.monotonic() - started < IDLE_RENEW_S:
                asked = time.monotonic()
                responses = client.idle_check(timeout=1)
                if any(_signals_new_mail(r) for r in responses):
                    return
                if not responses and time.monotonic() - asked < 0.5:
                    # imapclient answers a closed socket with an immediate empty list
                    # instead of an error; without this the loop would spin forever.
                    raise ConnectionError(f"IMAP connection to {self.config.imap_host} closed")
        finally:
            client.idle_done()


def _signals_new_mail(response: object) -> bool:
    return isinstance(response, tuple) and len(response) >= 2 and response[1] in (b"EXISTS",
                                                                                  b"RECENT")


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _quietly_logout(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # the connection may already be gone; there is nothing left to close
        try:
            client.shutdown()
        except Exception:
            pass
