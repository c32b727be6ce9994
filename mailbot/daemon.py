"""The daemon: one watcher thread per mailbox, one outbox task, clean shutdown.

``run_once`` (= ``mailbot poll --once``) drains every mailbox once and flushes
the outbox: it is also the test harness. ``run`` keeps going: each mailbox is
watched in its own thread (imapclient is blocking; IDLE wakes it within a second
of new mail), a broken mailbox reconnects with tenacity's jittered backoff
without touching the others, and the outbox task sends as soon as a commit
queued something. SIGTERM/SIGINT set a stop flag: the batch in hand is finished
and committed, nothing half-done is left, and the process exits.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone

from imapclient.exceptions import IMAPClientError
from sqlalchemy import func, select
from tenacity import Retrying, retry_if_exception_type, wait_random_exponential

from mailbot.clock import Clock, SystemClock
from mailbot.config import Config, MailboxConfig
from mailbot.db.models import Outbox
from mailbot.db.session import Database
from mailbot.drain import DrainReport, drain
from mailbot.fetch import MailSource
from mailbot.fetch.imap import ImapSource
from mailbot.fetch.maildir import MaildirSource
from mailbot.outbox.render import Renderer
from mailbot.outbox.worker import FlushReport, OutboxWorker
from mailbot.pipeline import PipelineContext
from mailbot.schedule.deadlines import Deadlines
from mailbot.send import Sender
from mailbot.send.directory import DirectorySender
from mailbot.send.smtp import SmtpSender
from mailbot.store.blobs import BlobStore

log = logging.getLogger("mailbot.daemon")

CONNECTION_ERRORS = (IMAPClientError, OSError, socket.timeout, EOFError)


@dataclass
class App:
    """Everything a running mailbot needs, built once from the config."""

    config: Config
    db: Database
    clock: Clock
    blobs: BlobStore
    renderer: Renderer
    pipeline: PipelineContext

    @classmethod
    def build(cls, config: Config, clock: Clock | None = None, db: Database | None = None) -> App:
        clock = clock or SystemClock()
        db = db or Database(config.database.url)
        blobs = BlobStore(config.storage.dir)
        renderer = Renderer(config.templates.dir)
        pipeline = PipelineContext(config, blobs, clock, Deadlines(config))
        return cls(config, db, clock, blobs, renderer, pipeline)

    def source(self, mailbox: MailboxConfig) -> MailSource:
        return MaildirSource(mailbox) if mailbox.kind == "maildir" else ImapSource(mailbox)

    def sender(self) -> Sender:
        if self.config.smtp.transport == "directory":
            assert self.config.smtp.directory is not None
            return DirectorySender(self.config.smtp.directory)
        return SmtpSender(self.config.smtp)

    def outbox(self) -> OutboxWorker:
        return OutboxWorker(self.config, self.db, self.blobs, self.renderer, self.sender(),
                            self.clock)


@dataclass
class RunReport:
    drained: list[DrainReport] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # mailbox → reason
    flushed: FlushReport = field(default_factory=FlushReport)

    @property
    def ok(self) -> bool:
        return not self.errors


def drain_mailbox(app: App, mailbox: MailboxConfig, stop: threading.Event | None = None,
                  notify: Callable[[], None] = lambda: None) -> DrainReport:
    source = app.source(mailbox)
    source.open()
    try:
        return drain(app.pipeline, app.db, source, stop=stop, notify=notify)
    finally:
        source.close()


def run_once(app: App) -> RunReport:
    """One pass: every mailbox drained once (a failing one does not stop the others),
    then the outbox flushed."""
    report = RunReport()
    for mailbox in app.config.mailboxes:
        try:
            report.drained.append(drain_mailbox(app, mailbox))
        except CONNECTION_ERRORS as exc:
            report.errors[mailbox.name] = f"{type(exc).__name__}: {exc}"
            log.error("mailbox %s: %s", mailbox.name, report.errors[mailbox.name])
    report.flushed = asyncio.run(app.outbox().flush())
    return report


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        self.stop = threading.Event()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def request_stop(self) -> None:
        self.stop.set()
        self._notify()

    def _notify(self) -> None:
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, install_signals: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self.request_stop)
        mailboxes = self.app.config.mailboxes
        pool = ThreadPoolExecutor(max_workers=max(1, len(mailboxes)),
                                  thread_name_prefix="mailbox")
        watchers = [self._loop.run_in_executor(pool, self._watch, mailbox)
                    for mailbox in mailboxes]
        log.info("mailbot running: %d mailbox(es)", len(mailboxes))
        try:
            await self._send_loop()
        finally:
            self.stop.set()
            await asyncio.gather(*watchers, return_exceptions=True)
            pool.shutdown(wait=True)
            # Whatever the last batches queued still goes out before we exit.
            await self.app.outbox().flush()
            log.info("mailbot stopped")

    async def _send_loop(self) -> None:
        assert self._wake is not None
        worker = self.app.outbox()
        while not self.stop.is_set():
            self._wake.clear()
            try:
                await worker.flush()
            except Exception:  # the sender must survive anything a row or server throws
                log.exception("outbox flush failed; retrying shortly")
            timeout = await asyncio.to_thread(self._until_next_due)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except TimeoutError:
                pass

    def _until_next_due(self) -> float:
        with self.app.db.session() as session:
            nxt = session.scalar(
                select(func.min(Outbox.next_attempt_at)).where(Outbox.status == "pending")
            )
        if nxt is None:
            return 30.0
        return max(0.05, min(30.0, (nxt - self.app.clock.now()).total_seconds()))

    def _watch(self, mailbox: MailboxConfig) -> None:
        """Keep one mailbox drained until stop; reconnect with backoff on any connection loss."""
        retrying = Retrying(
            retry=retry_if_exception_type(CONNECTION_ERRORS),
            wait=wait_random_exponential(multiplier=0.5, max=60),
            sleep=self.stop.wait,
            before_sleep=lambda state: log.warning(
                "mailbox %s: %s; reconnecting (attempt %d)", mailbox.name,
                state.outcome.exception() if state.outcome else "?", state.attempt_number),
            reraise=True,
        )
        while not self.stop.is_set():
            try:
                for attempt in retrying:
                    with attempt:
                        if self.stop.is_set():
                            return
                        self._session(mailbox)
            except CONNECTION_ERRORS:
                continue
            except Exception:
                log.exception("mailbox %s: unexpected failure; restarting its watcher", mailbox.name)
                self.stop.wait(5)

    def _session(self, mailbox: MailboxConfig) -> None:
        source = self.app.source(mailbox)
        source.open()
        try:
            while not self.stop.is_set():
                drain(self.app.pipeline, self.app.db, source, stop=self.stop, notify=self._notify)
                if self.stop.is_set():
                    return
                source.wait(self.stop)
        finally:
            source.close()


def parse_now(text: str) -> datetime:
    """``--now`` values: ISO 8601 with an offset (a naive value is taken as UTC)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value
