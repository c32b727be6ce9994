"""The daemon as systemd runs it: sd_notify, watchdog, SIGHUP reload, SIGTERM, health warnings.

systemd itself cannot run here, so the test plays its part with what systemd really
uses: an AF_UNIX datagram socket named in ``$NOTIFY_SOCKET`` (abstract namespace, as
systemd's own is), ``$WATCHDOG_USEC``, and real signals to a real ``mailbot run``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from factories import config_data, imap_mailbox, make_app, make_message, smtp_section
from servers import imap_append

from mailbot.clock import SystemClock
from mailbot.config import config_from_dict
from mailbot.daemon import App, Daemon
from mailbot.sdnotify import Notifier

pytestmark = pytest.mark.integration


class NotifySocket:
    """systemd's side of sd_notify: receives the daemon's datagrams, with arrival times."""

    def __init__(self) -> None:
        self.name = f"@mailbot-test-{secrets.token_hex(6)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.settimeout(0.2)
        self.received: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                for line in data.decode().splitlines():
                    self.received.append((time.monotonic(), line))
                self._cond.notify_all()

    def lines(self) -> list[str]:
        with self._cond:
            return [line for _t, line in self.received]

    def wait_for(self, line: str, count: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while sum(1 for _t, got in self.received if got == line) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {count}× {line!r} within {timeout}s; got "
                                         f"{[got for _t, got in self.received][-20:]}")
                self._cond.wait(left)

    def times(self, line: str) -> list[float]:
        with self._cond:
            return [t for t, got in self.received if got == line]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    sock = NotifySocket()
    try:
        yield sock
    finally:
        sock.close()


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def write_config(tmp_path: Path, account: Any, smtp: Any, **smtp_over: Any) -> Path:
    data = config_data(tmp_path, mailboxes=[imap_mailbox(account)],
                       smtp=smtp_section(smtp, **smtp_over))
    path = tmp_path / "mailbot.toml"
    path.write_text(tomli_w.dumps(data))
    make_app(config_from_dict(data, source=path))  # migrate the schema
    return path


class MailbotProcess:
    """`python -m mailbot run` with systemd's environment; stderr goes to a file we can read."""

    def __init__(self, config: Path, log: Path, env: dict[str, str]) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
                stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1", **env})

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return code, time.monotonic() - started


def test_notify_ready_watchdog_reload_stopping(tmp_path: Path, imap_account: Any,
                                               smtp_server: Any,
                                               notify_socket: NotifySocket) -> None:
    # Under Type=notify: READY=1 at start, WATCHDOG=1 every half period, RELOADING=1 then READY=1
    # around SIGHUP, STOPPING=1 on SIGTERM, exit 0.
    config = write_config(tmp_path, imap_account, smtp_server)
    daemon = MailbotProcess(config, tmp_path / "daemon.log",
                            {"NOTIFY_SOCKET": notify_socket.name, "WATCHDOG_USEC": "1000000"})
    try:
        notify_socket.wait_for("READY=1")
        notify_socket.wait_for("WATCHDOG=1", count=3, timeout=10)
        imap_append(imap_account, make_message())
        smtp_server.wait_for(1, timeout=20)
        daemon.signal(signal.SIGHUP)
        notify_socket.wait_for("RELOADING=1")
        notify_socket.wait_for("READY=1", count=2)
        code, took = daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    lines = notify_socket.lines()
    assert code == 0 and took < 5, daemon.text()
    assert "STOPPING=1" in lines
    assert lines.index("RELOADING=1") < len(lines) - 1 - lines[::-1].index("READY=1")
    pings = notify_socket.times("WATCHDOG=1")
    assert max(b - a for a, b in zip(pings, pings[1:])) < 1.0  # half of WATCHDOG_USEC, roughly
    assert "configuration reloaded" in daemon.text() and "Traceback" not in daemon.text()


def test_sighup_with_a_bad_config_keeps_the_running_one(tmp_path: Path, imap_account: Any,
                                                        smtp_server: Any,
                                                        notify_socket: NotifySocket) -> None:
    # A broken config on SIGHUP is logged with file, key and reason; mail keeps flowing on the old.
    config = write_config(tmp_path, imap_account, smtp_server)
    daemon = MailbotProcess(config, tmp_path / "daemon.log",
                            {"NOTIFY_SOCKET": notify_socket.name})
    try:
        notify_socket.wait_for("READY=1")
        good = config.read_text()
        config.write_text(good.replace('[smtp]\n', '[smtp]\nportt = 25\n', 1))
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in daemon.text(), what="the refused reload")
        imap_append(imap_account, make_message())
        smtp_server.wait_for(1, timeout=20)
        code, _took = daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    log = daemon.text()
    refused = next(line for line in log.splitlines() if "reload refused" in line)
    assert str(config) in refused and "smtp.portt" in refused, refused
    assert code == 0 and "Traceback" not in log


def _thread_daemon(app: App, notifier: Notifier | None = None) -> tuple[Daemon, threading.Thread]:
    daemon = Daemon(app, notifier=notifier or Notifier({}))
    thread = threading.Thread(target=lambda: asyncio.run(daemon.run(install_signals=False)),
                              daemon=True)
    thread.start()
    return daemon, thread


def test_reload_swaps_config_and_keeps_unchanged_connections(tmp_path: Path, dovecot: Any,
                                                             smtp_server: Any) -> None:
    # On reload an unchanged mailbox keeps its watcher (and IMAP connection), a changed one is
    # reconnected, and the new settings (here the case token prefix) apply to the next mail.
    first, second = dovecot.new_account(), dovecot.new_account()
    data = config_data(tmp_path, mailboxes=[imap_mailbox(first, name="mb0"),
                                            imap_mailbox(second, name="mb1")],
                       smtp=smtp_section(smtp_server))
    path = tmp_path / "mailbot.toml"
    path.write_text(tomli_w.dumps(data))
    app = make_app(config_from_dict(data, source=path))
    app = App.build(app.config, clock=SystemClock(), db=app.db)
    daemon, thread = _thread_daemon(app)
    try:
        wait_until(lambda: len(daemon._watchers) == 2, what="two watchers")
        before = {name: w.thread for name, w in daemon._watchers.items()}
        data["cases"]["token_prefix"] = "HELP"
        data["mailboxes"][1]["poll_interval"] = "2s"
        path.write_text(tomli_w.dumps(data))
        daemon.request_reload()
        wait_until(lambda: daemon.reloads == 1, what="the reload")
        after = {name: w.thread for name, w in daemon._watchers.items()}
        assert after["mb0"] is before["mb0"] and after["mb0"].is_alive()
        assert after["mb1"] is not before["mb1"] and not before["mb1"].is_alive()
        imap_append(first, make_message())
        imap_append(second, make_message(sender="bob@other.test", message_id="<b@other.test>"))
        subjects = sorted(str(m.message["Subject"]) for m in smtp_server.wait_for(2, timeout=20))
    finally:
        daemon.request_stop()
        thread.join(15)
    assert not thread.is_alive()
    assert subjects == ["Re: Printer on fire [HELP-1]", "Re: Printer on fire [HELP-2]"]


def test_health_warning_while_smtp_is_down_then_everything_goes_out(
        tmp_path: Path, imap_account: Any, smtp_server: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    # With SMTP down, acks wait and one "health: outbox stuck" warning is logged per
    # stuck_warning_after (not one per row per retry); when the server returns all go out.
    data = config_data(tmp_path, mailboxes=[imap_mailbox(imap_account)],
                       smtp=smtp_section(smtp_server, retry_max_delay="1s",
                                         stuck_warning_after="1s"))
    app = make_app(config_from_dict(data, source=tmp_path / "mailbot.toml"))
    app = App.build(app.config, clock=SystemClock(), db=app.db)
    smtp_server.stop()
    for n in range(5):
        imap_append(imap_account, make_message(sender=f"c{n}@customer.test",
                                               message_id=f"<h{n}@customer.test>"))
    caplog.set_level(logging.INFO)
    daemon, thread = _thread_daemon(app)
    try:
        wait_until(lambda: any("health: outbox stuck" in r.getMessage() for r in caplog.records),
                   timeout=15, what="the health warning")
        time.sleep(3.0)  # let the outage last a few warning periods
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        smtp_server.start()
        smtp_server.wait_for(5, timeout=20)
        wait_until(lambda: any("outbox flowing again" in r.getMessage() for r in caplog.records),
                   timeout=10, what="the recovery note")
    finally:
        daemon.request_stop()
        thread.join(15)
    health = [r for r in warnings if "health: outbox stuck" in r.getMessage()]
    assert 1 <= len(health) <= 6, [r.getMessage() for r in health]
    assert "5 mail(s) waiting" in health[-1].getMessage()
    assert all("health" in r.getMessage() or "reconnect" in r.getMessage() for r in warnings), \
        [r.getMessage() for r in warnings]


def test_sigterm_stops_within_seconds_even_with_smtp_down(tmp_path: Path, imap_account: Any,
                                                          smtp_server: Any,
                                                          notify_socket: NotifySocket) -> None:
    # SIGTERM with acks stuck behind a dead SMTP server: exit 0 within a few seconds, mail kept.
    config = write_config(tmp_path, imap_account, smtp_server, retry_max_delay="1s")
    smtp_server.stop()
    for n in range(20):
        imap_append(imap_account, make_message(sender=f"c{n}@customer.test",
                                               message_id=f"<t{n}@customer.test>"))
    daemon = MailbotProcess(config, tmp_path / "daemon.log", {"NOTIFY_SOCKET": notify_socket.name})
    try:
        notify_socket.wait_for("READY=1")
        wait_until(lambda: "deferred" in daemon.text(), what="a deferred ack")
        code, took = daemon.stop()
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert code == 0 and took < 8, (took, daemon.text()[-2000:])
    from sqlalchemy import func, select

    from mailbot.db.models import Outbox
    from mailbot.db.session import Database

    db = Database(f"sqlite:///{tmp_path / 'mailbot.db'}")
    with db.session() as session:
        assert session.scalar(select(func.count(Outbox.id))
                              .where(Outbox.status.in_(("pending", "sending")))) == 20
    db.dispose()


def test_watchdog_stops_when_a_watcher_is_stuck(tmp_path: Path, smtp_server: Any,
                                                notify_socket: NotifySocket) -> None:
    # A watcher hung on a server that never answers stops the WATCHDOG=1 pings, so systemd
    # restarts the service instead of trusting a stuck loop.
    silent = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    secret = tmp_path / "pw"
    secret.write_text("x\n")
    data = config_data(tmp_path, mailboxes=[{
        "name": "hung", "address": "support@example.test", "kind": "imap",
        "imap_host": "127.0.0.1", "imap_port": silent.getsockname()[1], "imap_ssl": False,
        "username": "x", "password_file": str(secret), "timeout": "60s"}],
        smtp=smtp_section(smtp_server))
    app = make_app(config_from_dict(data, source=tmp_path / "mailbot.toml"))
    app = App.build(app.config, clock=SystemClock(), db=app.db)
    notifier = Notifier({"NOTIFY_SOCKET": notify_socket.name, "WATCHDOG_USEC": "2000000"})
    daemon, thread = _thread_daemon(app, notifier)
    try:
        notify_socket.wait_for("READY=1")
        notify_socket.wait_for("WATCHDOG=1", count=2, timeout=5)
        time.sleep(7.0)  # past the 5 s a watcher may stay silent
        quiet_since = time.monotonic()
        time.sleep(2.5)
        late = [t for t in notify_socket.times("WATCHDOG=1") if t > quiet_since]
    finally:
        daemon.request_stop()
        for conn in accepted:
            conn.close()
        silent.close()
        thread.join(15)
    assert late == []
    assert not thread.is_alive()
