"""Drain one mailbox: fetch batches, run the pipeline, commit with the checkpoint, then flag.

The order is the whole point (DESIGN.md, "fetch"): a batch's cases, messages,
outbox rows and the new last-UID commit in one transaction; only then are the
IMAP messages flagged or moved. A crash before the commit re-fetches the batch
(and the idempotency key makes that harmless); a crash after it leaves messages
whose ``imap_done`` is false, which the next drain flags before fetching more.
A changed UIDVALIDITY resets the checkpoint; the idempotency key keeps the
re-fetch from duplicating anything. Quarantined mail is moved (never deleted) to
the mailbox's ``quarantine_folder`` after the commit, so it is in one place for a
person and is never read again by the daemon; ``mailbot quarantine retry`` re-runs it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from sqlalchemy import select, update

from mailbot.db.models import MailboxState, Message, Quarantine
from mailbot.db.session import Database
from mailbot.fetch import Fetched, MailSource
from mailbot.observe.processed import Processed, report_batch, timed
from mailbot.parse_pool import Parsed, Parser, Timed
from mailbot.pipeline import Outcome, PipelineContext, process

log = logging.getLogger("mailbot")


@dataclass
class DrainReport:
    mailbox: str
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)


def drain(
    ctx: PipelineContext,
    db: Database,
    source: MailSource,
    *,
    stop: threading.Event | None = None,
    notify: Callable[[], None] = lambda: None,
    observe: Callable[[Processed], None] | None = None,
) -> DrainReport:
    """Process everything new in an opened source; returns what happened to each message.

    Each message gets one log line once its batch committed (``observe.processed``);
    ``observe`` also sees it (the daemon's metrics).
    """
    report = DrainReport(source.name)
    after_uid = _checkpoint(ctx, db, source)
    if source.uidvalidity is not None:
        _finish_pending(db, source)
    parser = Parser(ctx.config)
    # A pipeline two batches deep: while the workers parse batch k+1, this thread stores
    # batch k. Batches still commit one after the other, in UID order.
    waiting: tuple[list[Fetched], list[Future[Timed] | Timed]] | None = None
    for batch in source.batches(after_uid):
        started = parser.submit([(item.raw, item.delivery) for item in batch])
        if waiting is not None:
            _store(ctx, db, source, waiting[0], parser.collect(waiting[1]), report, notify,
                   observe)
        waiting = (batch, started)
        if stop is not None and stop.is_set():
            break
    if waiting is not None:
        _store(ctx, db, source, waiting[0], parser.collect(waiting[1]), report, notify,
                   observe)
    return report


def _store(ctx: PipelineContext, db: Database, source: MailSource, batch: list[Fetched],
           parsed: list[tuple[Parsed, float]], report: DrainReport, notify: Callable[[], None],
           observe: Callable[[Processed], None] | None) -> None:
    """One batch: stored and checkpointed in one transaction, then flagged in IMAP."""
    with db.transaction() as session:
        with ctx.blobs.batch():  # blobs durable before the rows naming them commit
            stored = [timed(process, ctx, session, item.raw, result, item.delivery)
                      for item, (result, _took) in zip(batch, parsed)]
        outcomes = [outcome for outcome, _took in stored]
        uids = [item.delivery.uid for item in batch if item.delivery.uid is not None]
        if uids and source.uidvalidity is not None:
            session.execute(
                update(MailboxState)
                .where(MailboxState.mailbox == source.name, MailboxState.folder == source.folder)
                .values(last_uid=max(uids), updated_at=ctx.clock.now())
            )
        committing = time.perf_counter()
    report_batch([item.delivery for item in batch], [took for _p, took in parsed], stored,
                 time.perf_counter() - committing, observe)
    report.outcomes.extend(outcomes)
    notify()
    done = [item for item, outcome in zip(batch, outcomes) if outcome.status != "quarantined"]
    held = [item for item, outcome in zip(batch, outcomes) if outcome.status == "quarantined"]
    _mark_done(db, source, done)
    _move_quarantined(db, source, held)


def _checkpoint(ctx: PipelineContext, db: Database, source: MailSource) -> int:
    if source.uidvalidity is None:
        return 0
    with db.transaction() as session:
        state = session.scalar(
            select(MailboxState).where(MailboxState.mailbox == source.name,
                                       MailboxState.folder == source.folder)
        )
        now = ctx.clock.now()
        if state is None:
            session.add(MailboxState(mailbox=source.name, folder=source.folder,
                                     uidvalidity=source.uidvalidity, last_uid=0, updated_at=now))
            return 0
        if state.uidvalidity != source.uidvalidity:
            log.warning("mailbox %s folder %s: UIDVALIDITY changed %s → %s; re-reading the folder "
                        "(already recorded mail is recognised and skipped)", source.name,
                        source.folder, state.uidvalidity, source.uidvalidity)
            state.uidvalidity, state.last_uid, state.updated_at = source.uidvalidity, 0, now
        return int(state.last_uid)


def _finish_pending(db: Database, source: MailSource) -> None:
    """Flag messages committed before a crash or disconnect cut their IMAP step short."""
    with db.session() as session:
        uids = list(session.scalars(
            select(Message.uid).where(
                Message.mailbox == source.name, Message.folder == source.folder,
                Message.uidvalidity == source.uidvalidity, Message.imap_done.is_(False),
                Message.direction == "in",
            )
        ))
    with db.session() as session:
        held = list(session.scalars(
            select(Quarantine.uid).where(
                Quarantine.mailbox == source.name, Quarantine.folder == source.folder,
                Quarantine.uidvalidity == source.uidvalidity, Quarantine.moved_to.is_(None),
                Quarantine.status == "held", Quarantine.uid.is_not(None),
            )
        ))
    move = getattr(source, "quarantine_uids", None)
    if held and move is not None:
        log.info("mailbox %s: moving %d quarantined messages left behind", source.name, len(held))
        _set_moved(db, source, held, move([uid for uid in held if uid is not None]))
    if uids:
        log.info("mailbox %s: finishing IMAP flags of %d committed messages", source.name, len(uids))
        mark = getattr(source, "mark_uids_done", None)
        if mark is not None:
            mark([uid for uid in uids if uid is not None])
        _set_done(db, source, [uid for uid in uids if uid is not None])


def _mark_done(db: Database, source: MailSource, items: list[Fetched]) -> None:
    if not items:
        return
    source.mark_done(items)
    uids = [item.delivery.uid for item in items if item.delivery.uid is not None]
    _set_done(db, source, uids)


def _move_quarantined(db: Database, source: MailSource, items: list[Fetched]) -> None:
    """Take quarantined mail out of the watched folder, after the commit that recorded it.

    Out of the way so a person sees it in one place and no pass reads it again (a
    Maildir has no checkpoint: left in ``new/`` it would be re-read for ever).
    """
    if not items:
        return
    where = source.quarantine(items)
    if where is None:
        return
    shas = [hashlib.sha256(item.raw).hexdigest() for item in items]
    with db.transaction() as session:
        session.execute(
            update(Quarantine)
            .where(Quarantine.mailbox == source.name, Quarantine.raw_sha256.in_(shas),
                   Quarantine.moved_to.is_(None))
            .values(moved_to=where)
        )


def _set_moved(db: Database, source: MailSource, uids: list[int], where: str | None) -> None:
    if not uids or where is None or source.uidvalidity is None:
        return
    with db.transaction() as session:
        session.execute(
            update(Quarantine)
            .where(Quarantine.mailbox == source.name, Quarantine.folder == source.folder,
                   Quarantine.uidvalidity == source.uidvalidity, Quarantine.uid.in_(uids),
                   Quarantine.moved_to.is_(None))
            .values(moved_to=where)
        )


def _set_done(db: Database, source: MailSource, uids: list[int]) -> None:
    if not uids or source.uidvalidity is None:
        return
    with db.transaction() as session:
        session.execute(
            update(Message)
            .where(Message.mailbox == source.name, Message.folder == source.folder,
                   Message.uidvalidity == source.uidvalidity, Message.uid.in_(uids))
            .values(imap_done=True)
        )
