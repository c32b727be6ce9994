"""The daemon: one watcher thread per mailbox, one outbox task, clean shutdown.

``run_once`` (= ``mailbot poll --once``) drains every mailbox once and flushes
the outbox: it is also the test harness. ``run`` keeps going: each mailbox is
watched in its own thread (imapclient is blocking; IDLE wakes it within a second
of new mail), a broken mailbox reconnects with tenacity's jittered backoff
without touching the others, and the outbox task sends as soon as a commit
queued something. SIGTERM/SIGINT set a stop flag: the batch in hand is finished
and committed, nothing half-done is left, and the process exits within seconds
(mail still queued stays queued). SIGHUP reloads the config and templates.

Crash safety does not depend on any of this running: a ``kill -9`` at any point
leaves either an uncommitted batch (fetched again, the idempotency key makes it
harmless) or a committed one (flagged by the next drain), and an outbox row cut
between the SMTP server's 250 and our commit is resent after ``[smtp]
claim_lease`` with the same Message-ID. Under systemd (``Type=notify``) the
daemon reports READY/RELOADING/STOPPING and pings the watchdog only while its
watchers and sender show life.

Several daemons may share one PostgreSQL database (DESIGN.md, "Scale"): a watcher
takes its mailbox's lease (``mailbot.lease``) before it connects to IMAP, renews it
every third of ``[database] mailbox_lease`` from its loop and gives it back when it
leaves; a watcher whose mailbox is leased to another daemon waits without connecting
and takes the mailbox over once that lease has expired (its holder died).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from imapclient.exceptions import IMAPClientError
from sqlalchemy import func, select
from tenacity import Retrying, retry_if_exception_type, wait_random_exponential

from mailbot.clock import Clock, SystemClock, as_utc
from mailbot.config import Config, MailboxConfig, load_config, parse_interval, security_secret
from mailbot.db.models import Job, Outbox
from mailbot.schedule.runner import TickReport, tick
from mailbot.db.session import Database
from mailbot.drain import DrainReport, drain
from mailbot.errors import ConfigError
from mailbot.lease import MailboxLeases, daemon_id
from mailbot.observe.telemetry import Telemetry
from mailbot.fetch import MailSource
from mailbot.fetch.imap import ImapSource
from mailbot.fetch.maildir import MaildirSource
from mailbot.outbox.render import Renderer
from mailbot.outbox.worker import FlushReport, OutboxWorker
from mailbot.context import PipelineContext
from mailbot.schedule.deadlines import Deadlines
from mailbot.sdnotify import Notifier
from mailbot.send import Sender
from mailbot.send.directory import DirectorySender
from mailbot.send.smtp import SmtpSender
from mailbot.store.blobs import BlobStore

log = logging.getLogger("mailbot.daemon")

CONNECTION_ERRORS = (IMAPClientError, OSError, socket.timeout, EOFError)
STOP_GRACE_S = 3.0  # how long SIGTERM waits for the sender, then for a last flush
IDLE_SEND_WAIT_S = 30.0  # the sender looks at the outbox at least this often
WATCHER_STOP_S = 8.0  # SIGTERM waits this long for the watchers' batches to commit
LEASE_CHECK_MAX_S = 2.0  # a watcher without its lease looks again at least this often


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
        pipeline = PipelineContext(config, blobs, clock, Deadlines(config),
                                   security_secret(config))
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

    def leases(self, holder: str) -> MailboxLeases:
        """Mailbox leases held under ``holder`` for ``[database] mailbox_lease`` at a time."""
        return MailboxLeases(self.db, holder, parse_interval(self.config.database.mailbox_lease))

    def tick(self) -> TickReport:
        """Fire the scheduled jobs (reminders, escalations) due at the clock's now."""
        return tick(self.db, self.config, self.pipeline.secret, self.clock.now())


@dataclass
class RunReport:
    drained: list[DrainReport] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # mailbox → reason
    skipped: dict[str, str] = field(default_factory=dict)  # mailbox → who holds its lease
    flushed: FlushReport = field(default_factory=FlushReport)
    ticked: TickReport = field(default_factory=TickReport)

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
    leases = app.leases(daemon_id())
    for mailbox in app.config.mailboxes:
        # A running daemon owns this mailbox: polling it too would only race it.
        if not leases.acquire(mailbox.name):
            held = leases.current(mailbox.name)
            report.skipped[mailbox.name] = (f"leased to {held.holder} until "
                                            f"{held.expires_at.isoformat()}" if held else "leased")
            log.info("mailbox %s: skipped, %s", mailbox.name, report.skipped[mailbox.name])
            continue
        try:
            report.drained.append(drain_mailbox(app, mailbox))
        except CONNECTION_ERRORS as exc:
            report.errors[mailbox.name] = f"{type(exc).__name__}: {exc}"
            log.error("mailbox %s: %s", mailbox.name, report.errors[mailbox.name])
        finally:
            leases.release(mailbox.name)
    report.ticked = app.tick()
    report.flushed = asyncio.run(app.outbox().flush())
    return report


class _WatcherStop(threading.Event):
    """A watcher's stop flag that doubles as its heartbeat.

    Everything a watcher does between network round trips asks ``is_set()`` (the IDLE
    loop every second, drain after each batch) or waits on it (polling, reconnect
    backoff), so a watcher that keeps asking is alive and one that stopped asking is
    stuck. ``wait`` is sliced into one-second steps so a long wait keeps beating.
    """

    def __init__(self) -> None:
        super().__init__()
        self.beat = time.monotonic()

    def is_set(self) -> bool:
        self.beat = time.monotonic()
        return super().is_set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.beat = time.monotonic()
            left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if left <= 0:
                return super().is_set()
            if super().wait(left):
                return True


class _LeaseGuard(threading.Event):
    """The stop flag a watcher hands to drain and IDLE while it holds its mailbox's lease.

    Both ask ``is_set()`` after every batch and every second of IDLE; this renews the
    lease when a third of it has passed, so the renewal needs no thread of its own and
    stops exactly when the watcher stops asking (stuck or killed). It reads as set when
    the watcher must stop or when the lease went to another daemon — drain then ends
    after its batch and IDLE returns, and the session disconnects.
    """

    def __init__(self, stop: _WatcherStop, leases: MailboxLeases, mailbox: str) -> None:
        super().__init__()
        self.stop = stop
        self.leases = leases
        self.mailbox = mailbox
        self.every = leases.duration.total_seconds() / 3
        self.renewed = time.monotonic()
        self.lost = False

    def is_set(self) -> bool:
        if self.stop.is_set() or self.lost:
            return True
        now = time.monotonic()
        if now - self.renewed >= self.every:
            try:
                held = self.leases.acquire(self.mailbox)
            except Exception as exc:  # the database blinked: retry next second, until expiry
                log.warning("mailbox %s: cannot renew its lease: %s", self.mailbox, exc)
                held = now - self.renewed < self.leases.duration.total_seconds() - self.every
            else:
                self.renewed = now
            if not held:
                self.lost = True
                try:
                    state = self.leases.current(self.mailbox)
                except Exception:  # the database is still down: the line just says less
                    state = None
                log.warning("lease lost: mailbox=%s holder=%s at=%s now=%s; disconnecting",
                            self.mailbox, self.leases.holder, self.leases.now().isoformat(),
                            f"{state.holder} until {state.expires_at.isoformat()}" if state
                            else "free")
        return self.lost

    def set(self) -> None:
        self.stop.set()

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if left <= 0:
                return False
            self.stop.wait(left)
        return True


@dataclass
class _Watcher:
    mailbox: MailboxConfig
    stop: _WatcherStop
    thread: threading.Thread


class Daemon:
    """``mailbot run``: watchers, the sender, health, systemd notifications, reload."""

    def __init__(self, app: App, notifier: Notifier | None = None) -> None:
        self.app = app
        self.stop = threading.Event()
        self.notifier = notifier or Notifier()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: dict[str, _Watcher] = {}
        self._send_beat = time.monotonic()
        self._reloading: asyncio.Task[bool] | None = None
        self.reloads = 0  # completed reloads, for tests and the status line
        self._stuck = False  # the last health check found the outbox stuck
        self.holder = daemon_id()  # this daemon's name on its mailbox leases
        self.telemetry = Telemetry(lambda: self.app)  # metrics, /healthz

    # -- control -------------------------------------------------------------------------

    def request_stop(self) -> None:
        self.stop.set()
        for watcher in list(self._watchers.values()):
            watcher.stop.set()
        self._notify()

    def request_reload(self) -> None:
        """SIGHUP: reload from the event loop (a signal handler must not do the work)."""
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._start_reload)

    def _notify(self) -> None:
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- main ----------------------------------------------------------------------------

    async def run(self, install_signals: bool = True) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(sig, self.request_stop)
            self._loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        self.telemetry.serve()  # first: a taken [metrics] listen port stops us before any work
        for mailbox in self.app.config.mailboxes:
            self._start_watcher(mailbox)
        sender = asyncio.create_task(self._send_loop())
        health = asyncio.create_task(self._health_loop())
        log.info("mailbot running: %d mailbox(es)", len(self._watchers))
        self.notifier.ready(self._status_text())
        try:
            while not self.stop.is_set() and not sender.done():
                await asyncio.to_thread(self.stop.wait, 1.0)
        finally:
            self.notifier.stopping()
            self.request_stop()
            await asyncio.to_thread(self._join_watchers)
            await self._finish(sender, health)
            self.telemetry.close()
            self.notifier.close()
            log.info("mailbot stopped")

    async def _finish(self, sender: asyncio.Task[None], health: asyncio.Task[None]) -> None:
        """Let the sender end its row, then send what the last batches queued — bounded, so
        SIGTERM stops in seconds even with the SMTP server down (what is left stays queued)."""
        others = [task for task in (health, self._reloading) if task is not None]
        for task in others:
            task.cancel()
        await asyncio.wait([sender], timeout=STOP_GRACE_S)
        if not sender.done():
            sender.cancel()  # mid-send: the row keeps its lease and is resent, same Message-ID
        await asyncio.wait([sender, *others])
        try:
            await asyncio.wait_for(self.app.outbox().flush(), timeout=STOP_GRACE_S)
        except TimeoutError:
            log.warning("stopping with mail still queued in the outbox; it is sent after restart")
        if not sender.cancelled() and sender.exception() is not None:
            # The sender died of something unexpected: exit non-zero so systemd restarts us.
            raise sender.exception()  # type: ignore[misc]

    # -- outbox --------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        assert self._wake is not None
        app = self.app
        worker = app.outbox()
        while not self.stop.is_set():
            self._send_beat = time.monotonic()
            if self.app is not app:  # reloaded: new config, templates, sender settings
                app, worker = self.app, self.app.outbox()
            self._wake.clear()
            try:
                self.telemetry.ticked(await asyncio.to_thread(app.tick))
                self.telemetry.flushed(await worker.flush())
            except Exception:  # the sender must survive anything a row or server throws
                log.exception("outbox flush failed; retrying shortly")
            self._send_beat = time.monotonic()
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
            lease = session.scalar(
                select(func.min(Outbox.claimed_until)).where(Outbox.status == "sending")
            )
            job = session.scalar(select(func.min(Job.due_at)).where(Job.status == "pending"))
        now = self.app.clock.now()
        due = [as_utc(t) for t in (nxt, lease, job) if t is not None]
        if not due:
            return IDLE_SEND_WAIT_S
        return max(0.05, min(IDLE_SEND_WAIT_S, (min(due) - now).total_seconds()))

    # -- health and watchdog -------------------------------------------------------------

    async def _health_loop(self) -> None:
        """Watchdog pings and the periodic outbox health check, from the event loop itself:
        if the loop stalls, systemd stops hearing from us and restarts the service."""
        interval = (self.notifier.watchdog_s or 0) / 2 or None
        next_health = 0.0
        while not self.stop.is_set():
            if interval is not None and self.alive():
                self.notifier.watchdog()
            if time.monotonic() >= next_health:
                stuck_after = parse_interval(self.app.config.smtp.stuck_warning_after)
                try:
                    await asyncio.to_thread(self.check_outbox_health)
                except Exception as exc:  # a locked or broken DB is reported, not fatal here
                    log.warning("health: cannot read the outbox: %s", exc)
                next_health = time.monotonic() + max(1.0, stuck_after.total_seconds())
            await asyncio.sleep(min(interval or 1.0, 1.0))

    def alive(self) -> bool:
        """True while every mailbox watcher and the sender have shown life recently."""
        limit = max(5.0, self.notifier.watchdog_s or 60.0)
        now = time.monotonic()
        if now - self._send_beat > max(limit, IDLE_SEND_WAIT_S + limit):
            return False
        for watcher in self._watchers.values():
            if not watcher.thread.is_alive() or now - watcher.stop.beat > limit:
                return False
        return True

    def check_outbox_health(self) -> bool:
        """Log one warning while mail waits longer than ``[smtp] stuck_warning_after``.

        Called every ``stuck_warning_after``: an admin reading the log sees the outage
        once per interval with the count, the age of the oldest and the last error —
        not one line per row per retry. Returns whether the outbox is healthy.
        """
        now = self.app.clock.now()
        stuck_after = parse_interval(self.app.config.smtp.stuck_warning_after)
        with self.app.db.session() as session:
            count, oldest = session.execute(
                select(func.count(Outbox.id), func.min(Outbox.created_at))
                .where(Outbox.status.in_(("pending", "sending")))
            ).one()
            if not count or oldest is None or now - as_utc(oldest) <= stuck_after:
                if self._stuck:
                    self._stuck = False
                    log.info("health: outbox flowing again")
                    self.notifier.status(self._status_text())
                return True
            error = session.scalar(
                select(Outbox.last_error).where(Outbox.status.in_(("pending", "sending")),
                                                Outbox.last_error.is_not(None))
                .order_by(Outbox.id.desc()).limit(1)
            )
        waited = str(now - as_utc(oldest)).split(".")[0]
        log.warning("health: outbox stuck: %d mail(s) waiting, oldest for %s; last error: %s "
                    "(nothing is dropped; it is sent when %s:%s accepts again)", count, waited,
                    error or "-", self.app.config.smtp.host, self.app.config.smtp.port)
        self.notifier.status(f"outbox stuck: {count} waiting, oldest {waited}")
        self._stuck = True
        return False

    def _status_text(self) -> str:
        return f"watching {len(self._watchers)} mailbox(es)"

    # -- reload --------------------------------------------------------------------------

    def _start_reload(self) -> None:
        if self.stop.is_set():
            return
        if self._reloading is not None and not self._reloading.done():
            log.info("reload already in progress; this SIGHUP is folded into it")
            return
        self._reloading = asyncio.get_running_loop().create_task(self.reload())

    async def reload(self) -> bool:
        """Re-read the config file; on success swap it in, else keep running on the old one.

        What depends on the config is rebuilt: pipeline, renderer (templates), sender.
        Watchers whose mailbox settings are unchanged keep their connection; changed
        ones finish their batch, disconnect and reconnect with the new settings; removed
        ones stop; new ones start. ``[database] url`` cannot change under a running
        daemon (it would split the data): that needs a restart and is logged.
        """
        self.notifier.reloading()
        try:
            try:
                config = await asyncio.to_thread(load_config, self.app.config.source)
                app = await asyncio.to_thread(App.build, config, self.app.clock, self.app.db)
            except ConfigError as exc:
                log.error("reload refused, keeping the running configuration: bad config: %s",
                          exc)
                return False
            except Exception as exc:
                log.error("reload refused, keeping the running configuration: %s: %s",
                          type(exc).__name__, exc)
                return False
            old = self.app
            if config.database.url != old.config.database.url:
                log.warning("reload: database.url changed; it takes effect after a restart")
            if config.metrics != old.config.metrics:
                log.warning("reload: [metrics] changed; it takes effect after a restart")
            self.app = app
            await self._reconcile_watchers(old.config, config)
            self.reloads += 1
            self._notify()
            log.info("configuration reloaded from %s", config.source)
            return True
        finally:
            self.notifier.ready(self._status_text())

    async def _reconcile_watchers(self, old: Config, new: Config) -> None:
        before = {m.name: m for m in old.mailboxes}
        after = {m.name: m for m in new.mailboxes}
        changed = [name for name in before if name in after and before[name] != after[name]]
        gone = [name for name in before if name not in after]
        for name in gone + changed:
            watcher = self._watchers.pop(name, None)
            if watcher is None:
                continue
            log.info("reload: mailbox %s %s; disconnecting it", name,
                     "removed" if name in gone else "changed")
            watcher.stop.set()
            await asyncio.to_thread(watcher.thread.join)
            self.telemetry.forget(name)
        for name in changed + [n for n in after if n not in before]:
            if not self.stop.is_set():
                self._start_watcher(after[name])

    # -- mailbox watchers ------------------------------------------------------------------

    def _start_watcher(self, mailbox: MailboxConfig) -> None:
        stop = _WatcherStop()
        if self.stop.is_set():
            stop.set()
        thread = threading.Thread(target=self._watch, args=(mailbox, stop),
                                  name=f"mailbox-{mailbox.name}", daemon=True)
        self._watchers[mailbox.name] = _Watcher(mailbox, stop, thread)
        thread.start()

    def _join_watchers(self) -> None:
        """Wait for each watcher to commit its batch and log out, but not for ever: one hung in
        a network call is abandoned (its threads die with the process; nothing it had not
        committed counts, exactly as after a kill -9)."""
        deadline = time.monotonic() + WATCHER_STOP_S
        for watcher in list(self._watchers.values()):
            watcher.thread.join(max(0.0, deadline - time.monotonic()))
            if watcher.thread.is_alive():
                log.warning("mailbox %s: still busy in a network call; not waiting for it",
                            watcher.mailbox.name)

    def _watch(self, mailbox: MailboxConfig, stop: _WatcherStop) -> None:
        """Keep one mailbox drained until stop; reconnect with backoff on any connection loss."""
        retrying = Retrying(
            retry=retry_if_exception_type(CONNECTION_ERRORS),
            wait=wait_random_exponential(multiplier=0.5, max=60),
            sleep=stop.wait,
            before_sleep=lambda state: log.warning(
                "mailbox %s: %s; reconnecting (attempt %d)", mailbox.name,
                state.outcome.exception() if state.outcome else "?", state.attempt_number),
            reraise=True,
        )
        while not stop.is_set():
            try:
                for attempt in retrying:
                    with attempt:
                        if stop.is_set():
                            return
                        self._session(mailbox, stop)
            except CONNECTION_ERRORS:
                continue
            except Exception:
                log.exception("mailbox %s: unexpected failure; restarting its watcher", mailbox.name)
                stop.wait(5)

    def _session(self, mailbox: MailboxConfig, stop: _WatcherStop) -> None:
        """Hold the mailbox's lease, then drain and wait on one connection until stop or loss.

        The lease comes first: a daemon that does not hold it never connects, so the
        mailbox sees one client at a time. Leaving the session for any reason gives it
        back (a reconnect takes it again), so a clean stop hands over at once.
        """
        leases = self.app.leases(self.holder)
        if not self._await_lease(mailbox, leases, stop):
            return
        guard = _LeaseGuard(stop, leases, mailbox.name)
        stage = "connect"  # for the IMAP error metric: which step lost the server
        try:
            source = self.app.source(mailbox)
            source.open()
            self.telemetry.imap_reached(mailbox.name)
            stage = "fetch"
            try:
                while not guard.is_set():
                    # self.app, not a captured one: after a reload the same connection drains
                    # with the new pipeline (templates, service levels, managers).
                    drain(self.app.pipeline, self.app.db, source, stop=guard, notify=self._notify,
                          observe=self.telemetry.processed)
                    self.telemetry.imap_reached(mailbox.name)
                    if guard.is_set():
                        return
                    source.wait(guard)
            finally:
                source.close()
        except CONNECTION_ERRORS as exc:
            self.telemetry.imap_failed(mailbox.name, stage, exc)
            raise
        finally:
            if not guard.lost:
                try:
                    leases.release(mailbox.name)
                except Exception as exc:  # it then expires by itself
                    log.warning("mailbox %s: cannot release its lease: %s", mailbox.name, exc)

    def _await_lease(self, mailbox: MailboxConfig, leases: MailboxLeases,
                     stop: _WatcherStop) -> bool:
        """Until this daemon holds the mailbox's lease (True) or is told to stop (False).

        Looks again every fifth of the lease (at most every two seconds), so a dead
        holder's mailbox is taken over within seconds of its lease running out.
        """
        every = min(LEASE_CHECK_MAX_S, max(0.2, leases.duration.total_seconds() / 5))
        waiting = False
        while not stop.is_set():
            try:
                if leases.acquire(mailbox.name):
                    return True
            except Exception as exc:  # the database is down: keep waiting, do not connect
                log.warning("mailbox %s: cannot take its lease: %s", mailbox.name, exc)
            else:
                if not waiting:
                    state = leases.current(mailbox.name)
                    log.info("mailbox %s: leased to another daemon (%s); waiting", mailbox.name,
                             f"{state.holder} until {state.expires_at.isoformat()}" if state
                             else "?")
                    waiting = True
            stop.wait(every)
        return False


def parse_now(text: str) -> datetime:
    """``--now`` values: ISO 8601 with an offset (a naive value is taken as UTC)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value
