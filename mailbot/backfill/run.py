"""Run an import: read a folder read-only, batch by batch, each committed with its checkpoint.

- The folder is opened with EXAMINE (``fetch.readonly``): no flag, no move, no
  delete, whoever else reads it.
- What to read is decided by UID: ``SEARCH ALL`` (or ``SINCE`` a date), then only
  UIDs above the import's own checkpoint. That checkpoint is a ``MailboxState`` row
  under the folder key ``import:<folder>``, so it never collides with the live
  checkpoint of the same folder; each batch's messages and the new last UID commit
  in one transaction. A run killed at any moment (Ctrl-C, SIGTERM, ``kill -9``)
  resumes after the last committed batch; a batch cut short is read again and the
  idempotency key (Message-ID + content hash) skips what was recorded.
- A changed UIDVALIDITY (the folder was re-created) stops the run with a clear
  message; ``restart`` reads the folder from the start again, duplicates skipped.
- Imported messages and quarantine rows carry the folder key as their folder, so
  the daemon's drain, which flags and moves the rows of *its* folder after commit,
  never touches the mail the import only looked at.
- When the import reads the very folder a daemon watches, mail above the daemon's
  checkpoint is left to the daemon: it is new mail a customer is waiting to have
  acknowledged, not history. The import takes no mailbox lease, so it runs beside
  the daemon.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from types import FrameType

from imapclient.exceptions import IMAPClientError
from sqlalchemy import select, update

from mailbot.backfill import checkpoint_key
from mailbot.backfill.progress import NoProgress, Progress
from mailbot.config import Config, MailboxConfig
from mailbot.context import Outcome, PipelineContext
from mailbot.db.models import MailboxState, Message
from mailbot.db.session import Database
from mailbot.errors import MailbotError
from mailbot.fetch.readonly import ReadOnlyImapSource
from mailbot.pipeline import parse_raw, process

CONNECTION_ERRORS = (IMAPClientError, OSError, socket.timeout, EOFError)


class ImportFailed(MailbotError):
    """Raised when an import cannot start or go on: the folder cannot be opened, the
    connection broke, or the folder's UIDVALIDITY changed since the checkpoint."""


def mailbox_named(config: Config, name: str) -> MailboxConfig | None:
    return next((m for m in config.mailboxes if m.name == name), None)


@dataclass
class ImportReport:
    mailbox: str
    folder: str
    pending: int = 0  # messages this run set out to read
    resumed_after: int = 0  # the import checkpoint (UID) this run started after
    last_uid: int = 0  # the checkpoint when it stopped
    left_to_daemon: int = 0  # newer mail in the daemon's own folder, left for it to answer
    new_cases: int = 0
    threaded: int = 0  # into cases that existed before the message
    without_case: int = 0  # automatic or staff mail that threads nowhere
    duplicates: int = 0
    quarantined: int = 0
    dropped: int = 0
    interrupted: bool = False

    @property
    def imported(self) -> int:
        return self.new_cases + self.threaded + self.without_case

    @property
    def read(self) -> int:
        return self.imported + self.duplicates + self.quarantined + self.dropped

    def add(self, outcome: Outcome) -> None:
        if outcome.status == "stored":
            if outcome.case_token is None:
                self.without_case += 1
            elif outcome.new_case:
                self.new_cases += 1
            else:
                self.threaded += 1
        elif outcome.status == "duplicate":
            self.duplicates += 1
        elif outcome.status == "quarantined":
            self.quarantined += 1
        else:
            self.dropped += 1

    def summary(self) -> list[str]:
        """What an admin reads at the end: one line, plus one per thing to know."""
        where = f"{self.mailbox}/{self.folder}"
        lines = []
        if self.read == 0 and not self.interrupted:
            lines.append(f"{where}: nothing to import (checkpoint at UID {self.last_uid})")
        else:
            lines.append(
                f"{where}: {self.imported} imported ({self.new_cases} new cases, "
                f"{self.threaded} threaded into existing cases, {self.without_case} without a "
                f"case), {self.duplicates} duplicates skipped, {self.quarantined} quarantined, "
                f"{self.dropped} dropped; checkpoint at UID {self.last_uid}")
        if self.resumed_after:
            lines.append(f"  resumed after UID {self.resumed_after} (an earlier run's "
                         "checkpoint; --restart reads the folder from the start)")
        if self.left_to_daemon:
            lines.append(f"  {self.left_to_daemon} newer messages left to the daemon watching "
                         "this folder (it acknowledges new mail)")
        if self.quarantined:
            lines.append("  quarantined mail: see `mailbot quarantine list`")
        if self.interrupted:
            lines.append(f"  interrupted after {self.read} of {self.pending}: run the same "
                         "command again to continue")
        return lines


def import_history(
    ctx: PipelineContext,
    db: Database,
    mailbox: MailboxConfig,
    folder: str,
    *,
    since: date | None = None,
    batch_size: int | None = None,
    restart: bool = False,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    source_factory: Callable[[MailboxConfig], ReadOnlyImapSource] = ReadOnlyImapSource,
) -> ImportReport:
    """Import ``folder`` of ``mailbox`` as history; returns what became of each message."""
    if mailbox.kind != "imap":
        raise ImportFailed(f"mailbox {mailbox.name} is a {mailbox.kind}; import reads IMAP folders")
    ctx = replace(ctx, historic=True)
    progress = progress or NoProgress()
    update_ = {"folder": folder} | ({"batch_size": batch_size} if batch_size else {})
    source = source_factory(mailbox.model_copy(update=update_))
    key = checkpoint_key(folder)
    report = ImportReport(mailbox.name, folder)
    try:
        source.open()
    except CONNECTION_ERRORS as exc:
        raise ImportFailed(f"mailbox {mailbox.name}: cannot open folder {folder!r} read-only on "
                           f"{mailbox.imap_host}: {_why(exc)}") from None
    try:
        assert source.uidvalidity is not None
        after = _checkpoint(ctx, db, mailbox.name, key, source.uidvalidity, folder, restart)
        report.resumed_after = report.last_uid = after
        try:
            uids = source.search(after, since)
        except CONNECTION_ERRORS as exc:
            raise ImportFailed(f"mailbox {mailbox.name}: SEARCH in {folder!r} failed: "
                               f"{_why(exc)}") from None
        limit = _live_checkpoint(db, mailbox, folder, source.uidvalidity)
        if limit is not None:
            report.left_to_daemon = sum(1 for uid in uids if uid > limit)
            uids = [uid for uid in uids if uid <= limit]
        report.pending = len(uids)
        progress.start(len(uids))
        try:
            _import_batches(ctx, db, source, key, uids, report, progress, stop)
        except CONNECTION_ERRORS as exc:
            raise ImportFailed(f"mailbox {mailbox.name}: connection lost after {report.read} of "
                               f"{report.pending} messages ({_why(exc)}); run the same command "
                               "again to continue") from None
        finally:
            progress.finish()
    finally:
        source.close()
    return report


def _import_batches(ctx: PipelineContext, db: Database, source: ReadOnlyImapSource, key: str,
                    uids: list[int], report: ImportReport, progress: Progress,
                    stop: threading.Event | None) -> None:
    for batch in source.batches_of(uids):
        items = [(item.raw, replace(item.delivery, folder=key)) for item in batch]
        parsed = [parse_raw(raw, delivery, ctx.config) for raw, delivery in items]
        batch_uids = [d.uid for _, d in items if d.uid is not None]
        with db.transaction() as session:
            outcomes = [process(ctx, session, raw, result, delivery)
                        for (raw, delivery), result in zip(items, parsed)]
            # There is no IMAP step to finish for mail the import only looked at.
            session.execute(
                update(Message)
                .where(Message.mailbox == source.name, Message.folder == key,
                       Message.uidvalidity == source.uidvalidity, Message.uid.in_(batch_uids),
                       Message.imap_done.is_(False))
                .values(imap_done=True))
            if batch_uids:
                session.execute(
                    update(MailboxState)
                    .where(MailboxState.mailbox == source.name, MailboxState.folder == key)
                    .values(last_uid=max(batch_uids), updated_at=ctx.clock.now()))
        for outcome in outcomes:
            report.add(outcome)
        if batch_uids:
            report.last_uid = max(batch_uids)
        progress.advance(len(batch))
        if stop is not None and stop.is_set():
            report.interrupted = report.read < report.pending
            return


def _checkpoint(ctx: PipelineContext, db: Database, mailbox: str, key: str, uidvalidity: int,
                folder: str, restart: bool) -> int:
    """The UID to continue after (0: from the start), creating or resetting the row."""
    now = ctx.clock.now()
    with db.transaction() as session:
        state = session.scalar(select(MailboxState).where(MailboxState.mailbox == mailbox,
                                                          MailboxState.folder == key))
        if state is None:
            session.add(MailboxState(mailbox=mailbox, folder=key, uidvalidity=uidvalidity,
                                     last_uid=0, updated_at=now))
            return 0
        if state.uidvalidity != uidvalidity and not restart:
            raise ImportFailed(
                f"mailbox {mailbox}: folder {folder!r} was re-created since the last import "
                f"(UIDVALIDITY {state.uidvalidity} → {uidvalidity}), so its checkpoint at UID "
                f"{state.last_uid} means nothing now; run again with --restart to read it from "
                "the start (mail already imported is recognised and skipped)")
        if restart:
            state.uidvalidity, state.last_uid, state.updated_at = uidvalidity, 0, now
            return 0
        return int(state.last_uid)


def _live_checkpoint(db: Database, mailbox: MailboxConfig, folder: str,
                     uidvalidity: int) -> int | None:
    """The daemon's last UID when the import reads the daemon's own folder, else None."""
    if not _same_folder(mailbox.folder, folder):
        return None
    with db.session() as session:
        state = session.scalar(select(MailboxState).where(MailboxState.mailbox == mailbox.name,
                                                          MailboxState.folder == mailbox.folder))
        if state is None or state.uidvalidity != uidvalidity:
            return None
        return int(state.last_uid)


def _same_folder(a: str, b: str) -> bool:
    # INBOX is case-insensitive in IMAP (RFC 3501 5.1); every other name is exact.
    return a == b or a.upper() == b.upper() == "INBOX"


def _why(exc: BaseException) -> str:
    text = str(exc).strip()
    if text[:2] in ("b'", 'b"'):  # imapclient puts the server's bytes in its messages
        text = text[2:-1]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """SIGINT/SIGTERM finish the batch in hand (it commits with its checkpoint) and stop.

    A second signal acts at once (the default action): whatever was not committed is
    read again by the next run.
    """
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signum, previous[signum])

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
