"""From a customer's mail to an acknowledgement on real servers: Dovecot in, aiosmtpd out."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from sqlalchemy import func, select

from factories import config_data, imap_mailbox, make_app, make_message, smtp_section
from mailbot.clock import SystemClock
from mailbot.config import config_from_dict
from mailbot.daemon import App, Daemon, run_once
from mailbot.db.models import Case, MailboxState, Message, Outbox
from servers import imap_append, imap_connect

pytestmark = pytest.mark.integration


def imap_data(tmp_path: Path, accounts: list[Any], smtp: Any, **mailbox_over: Any) -> dict[str, Any]:
    return config_data(
        tmp_path,
        mailboxes=[imap_mailbox(a, name=f"mb{i}", **mailbox_over) for i, a in enumerate(accounts)],
        smtp=smtp_section(smtp),
    )


def imap_app(tmp_path: Path, accounts: list[Any], smtp: Any, clock: Any = None,
             **mailbox_over: Any) -> App:
    data = imap_data(tmp_path, accounts, smtp, **mailbox_over)
    # Dovecot stamps APPENDed mail with the real time, so the app's clock is the real one
    # unless a test steers it (a clock a day ahead would fire tomorrow's follow-ups now).
    return make_app(config_from_dict(data, source=tmp_path / "mailbot.toml"),
                    clock or SystemClock())


def flags_of(account: Any, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
    client = imap_connect(account)
    try:
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        if not uids:
            return {}
        return {uid: data[b"FLAGS"] for uid, data in client.fetch(uids, ["FLAGS"]).items()}
    finally:
        client.logout()


def counts(app: App) -> tuple[int, int, int]:
    with app.db.session() as session:
        return tuple(  # type: ignore[return-value]
            int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Case, Message, Outbox))


def test_appended_mail_is_acknowledged_and_flagged_after_commit(
        tmp_path: Path, imap_account: Any, smtp_server: Any) -> None:
    # A mail APPENDed to INBOX becomes SUP-1, the ack reaches the SMTP server, the mail gets \Seen.
    uid = imap_append(imap_account, make_message())
    app = imap_app(tmp_path, [imap_account], smtp_server)
    report = run_once(app)
    assert report.ok and report.drained[0].outcomes[0].case_token == "[SUP-1]"
    (sent,) = smtp_server.wait_for(1)
    ack = sent.message
    assert sent.rcpt_tos == ("alice@customer.test",)
    assert ack["Subject"] == "Re: Printer on fire [SUP-1]"
    assert ack["In-Reply-To"] == "<m1@customer.test>"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Auto-Response-Suppress"] == "All"
    with app.db.session() as session:
        (row,) = session.scalars(select(Outbox))
        assert row.status == "sent" and ack["Message-ID"] == row.message_id
        state = session.scalar(select(MailboxState))
        assert state is not None and state.last_uid == uid
        message = session.scalar(select(Message).where(Message.direction == "in"))
        assert message is not None and message.imap_done and message.uid == uid
    assert b"\\Seen" in flags_of(imap_account)[uid]


def test_internaldate_is_the_message_time(tmp_path: Path, imap_account: Any,
                                          smtp_server: Any) -> None:
    # The case opens at the mailbox's INTERNALDATE, not when mailbot got round to it.
    from datetime import datetime, timezone

    arrived = datetime(2026, 11, 20, 7, 15, tzinfo=timezone.utc)
    imap_append(imap_account, make_message(), msg_time=arrived)
    app = imap_app(tmp_path, [imap_account], smtp_server)
    run_once(app)
    with app.db.session() as session:
        assert session.scalar(select(Case.opened_at)) == arrived


def test_poll_once_twice_changes_nothing(tmp_path: Path, imap_account: Any,
                                         smtp_server: Any) -> None:
    # A second pass over the same mailbox, and the same mail appended again, add nothing.
    raw = make_message()
    imap_append(imap_account, raw)
    app = imap_app(tmp_path, [imap_account], smtp_server)
    run_once(app)
    run_once(app)
    imap_append(imap_account, raw)
    report = run_once(app)
    assert [o.status for o in report.drained[0].outcomes] == ["duplicate"]
    assert counts(app) == (1, 2, 1)
    time.sleep(0.2)  # give a wrongly queued second ack the chance to arrive before we count
    assert len(smtp_server.messages) == 1


def test_uidvalidity_change_does_not_duplicate(tmp_path: Path, imap_account: Any,
                                               smtp_server: Any) -> None:
    # The folder is recreated (new UIDVALIDITY, UIDs restart): old mail is recognised, new is not lost.
    client = imap_connect(imap_account)
    client.create_folder("Support")
    client.logout()
    first = make_message()
    imap_append(imap_account, first, folder="Support")
    app = imap_app(tmp_path, [imap_account], smtp_server, folder="Support")
    run_once(app)
    client = imap_connect(imap_account)
    client.delete_folder("Support")
    client.create_folder("Support")
    client.logout()
    imap_append(imap_account, first, folder="Support")
    imap_append(imap_account, make_message(sender="dave@customer.test", subject="new one",
                                           message_id="<d1@customer.test>"), folder="Support")
    report = run_once(app)
    assert [o.status for o in report.drained[0].outcomes] == ["duplicate", "stored"]
    assert counts(app)[0] == 2
    assert len(smtp_server.wait_for(2)) == 2


def test_processed_folder_move(tmp_path: Path, imap_account: Any, smtp_server: Any) -> None:
    # With processed_folder set, recorded mail leaves INBOX for that folder after the commit.
    imap_append(imap_account, make_message())
    app = imap_app(tmp_path, [imap_account], smtp_server, processed_folder="Processed")
    run_once(app)
    assert flags_of(imap_account) == {}
    moved = flags_of(imap_account, "Processed")
    assert len(moved) == 1 and b"\\Seen" in next(iter(moved.values()))


def test_several_mailboxes(tmp_path: Path, dovecot: Any, smtp_server: Any) -> None:
    # Two [[mailboxes]] are drained in one pass; each keeps its own checkpoint.
    first, second = dovecot.new_account(), dovecot.new_account()
    imap_append(first, make_message())
    imap_append(second, make_message(sender="erin@other.test", message_id="<e@other.test>"))
    app = imap_app(tmp_path, [first, second], smtp_server)
    report = run_once(app)
    assert [len(d.outcomes) for d in report.drained] == [1, 1]
    assert sorted(m.rcpt_tos[0] for m in smtp_server.wait_for(2)) == [
        "alice@customer.test", "erin@other.test"]
    with app.db.session() as session:
        assert sorted(session.scalars(select(MailboxState.mailbox))) == ["mb0", "mb1"]


def test_broken_mailbox_does_not_stop_the_others(tmp_path: Path, dovecot: Any,
                                                 smtp_server: Any) -> None:
    # A mailbox with a wrong password fails alone; the healthy one is processed and acked.
    good, bad = dovecot.new_account(), dovecot.new_account()
    imap_append(good, make_message())
    app = imap_app(tmp_path, [good, bad], smtp_server)
    Path(app.config.mailboxes[1].password_file).write_text("wrong\n")  # type: ignore[arg-type]
    report = run_once(app)
    assert list(report.errors) == ["mb1"] and not report.ok
    assert len(smtp_server.wait_for(1)) == 1


def test_smtp_outage_keeps_ack_queued_until_server_returns(tmp_path: Path, imap_account: Any,
                                                           smtp_server: Any) -> None:
    # With SMTP refusing (451), the ack waits in the outbox; it goes out once the server accepts.
    from mailbot.clock import FixedClock

    # Dovecot stamps the mail with the real time; the test clock starts there and is moved.
    start = SystemClock().now()
    clock = FixedClock(start)
    smtp_server.fail_all(451)
    imap_append(imap_account, make_message())
    app = imap_app(tmp_path, [imap_account], smtp_server, clock=clock)
    run_once(app)
    with app.db.session() as session:
        rows = list(session.scalars(select(Outbox)))
        (row,) = rows
        assert (row.status, row.attempts) == ("pending", 1)
        assert row.last_error and "451" in row.last_error
        assert row.next_attempt_at > start
    smtp_server.reset_failures()
    clock.advance(minutes=2)
    run_once(app)
    (sent,) = smtp_server.wait_for(1)
    with app.db.session() as session:
        (row,) = session.scalars(select(Outbox))
        assert row.status == "sent" and sent.message["Message-ID"] == row.message_id


def test_permanent_rejection_is_recorded_not_retried(tmp_path: Path, imap_account: Any,
                                                     smtp_server: Any) -> None:
    # A 550 marks the ack failed and writes a delivery_failed event on the case.
    smtp_server.fail_all(550)
    imap_append(imap_account, make_message())
    app = imap_app(tmp_path, [imap_account], smtp_server)
    run_once(app)
    run_once(app)
    from mailbot.db.models import Event

    with app.db.session() as session:
        (row,) = session.scalars(select(Outbox))
        assert row.status == "failed" and row.attempts == 1
        event = session.scalar(select(Event).where(Event.kind == "delivery_failed"))
        assert event is not None and "550" in event.detail["error"]


def _run_daemon(app: App) -> tuple[Daemon, threading.Thread]:
    daemon = Daemon(app)
    thread = threading.Thread(target=lambda: asyncio.run(daemon.run(install_signals=False)),
                              daemon=True)
    thread.start()
    return daemon, thread


def test_idle_acknowledges_within_a_second(tmp_path: Path, imap_account: Any,
                                           smtp_server: Any) -> None:
    # With IDLE, a mail landing in the mailbox is acknowledged in about a second.
    app = imap_app(tmp_path, [imap_account], smtp_server, clock=SystemClock(),
                   poll_interval="1h")
    daemon, thread = _run_daemon(app)
    try:
        time.sleep(1.0)  # let the watcher connect and enter IDLE
        latencies = []
        for n in range(3):
            started = time.monotonic()
            imap_append(imap_account, make_message(sender=f"c{n}@customer.test",
                                                   message_id=f"<idle{n}@customer.test>"))
            smtp_server.wait_for(n + 1, timeout=10)
            latencies.append(time.monotonic() - started)
        print(f"IDLE ack latencies (s): {[round(x, 3) for x in latencies]}")
        assert sorted(latencies)[1] < 1.0 and max(latencies) < 1.5, latencies
    finally:
        daemon.request_stop()
        thread.join(15)
    assert not thread.is_alive()


def test_daemon_survives_imap_restart(tmp_path: Path, dovecot: Any, imap_account: Any,
                                      smtp_server: Any) -> None:
    # Dovecot restarting mid-IDLE: the watcher reconnects and mail after the restart is acked.
    app = imap_app(tmp_path, [imap_account], smtp_server, clock=SystemClock(), poll_interval="1h")
    daemon, thread = _run_daemon(app)
    try:
        imap_append(imap_account, make_message(message_id="<before@customer.test>"))
        smtp_server.wait_for(1, timeout=30)
        dovecot.restart()
        imap_append(imap_account, make_message(sender="late@customer.test",
                                               message_id="<after@customer.test>"))
        smtp_server.wait_for(2, timeout=30)
    finally:
        daemon.request_stop()
        thread.join(15)
    assert counts(app) == (2, 4, 2)


def test_mailbot_run_stops_cleanly_on_sigterm(tmp_path: Path, imap_account: Any,
                                              smtp_server: Any) -> None:
    # `mailbot run` as a real process: acks a mail, then exits 0 within seconds of SIGTERM.
    data = imap_data(tmp_path, [imap_account], smtp_server)
    config_path = tmp_path / "mailbot.toml"
    config_path.write_text(tomli_w.dumps(data))
    make_app(config_from_dict(data, source=config_path))  # migrate the schema
    imap_append(imap_account, make_message())
    process = subprocess.Popen([sys.executable, "-m", "mailbot", "--config", str(config_path),
                                "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        smtp_server.wait_for(1, timeout=20)
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        _out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert time.monotonic() - started < 5
    assert "mailbot stopped" in err and "Traceback" not in err



def test_polling_when_idle_is_off(tmp_path: Path, imap_account: Any, smtp_server: Any) -> None:
    # With idle = false the watcher polls at poll_interval and still acknowledges new mail.
    app = imap_app(tmp_path, [imap_account], smtp_server, clock=SystemClock(), idle=False,
                   poll_interval="300ms")
    daemon, thread = _run_daemon(app)
    try:
        imap_append(imap_account, make_message())
        smtp_server.wait_for(1, timeout=10)
    finally:
        daemon.request_stop()
        thread.join(15)
    assert not thread.is_alive()


def test_resend_after_crash_keeps_message_id(tmp_path: Path, imap_account: Any,
                                             smtp_server: Any) -> None:
    # Killed between the SMTP server's 250 and our commit: the resend is the same Message-ID.
    from mailbot.clock import FixedClock
    from mailbot.outbox.queue import CLAIM_LEASE, claim_due
    from factories import T0

    clock = FixedClock(T0)
    imap_append(imap_account, make_message())
    app = imap_app(tmp_path, [imap_account], smtp_server, clock=clock)
    from mailbot.daemon import drain_mailbox

    drain_mailbox(app, app.config.mailboxes[0])
    worker = app.outbox()
    with app.db.transaction() as session:
        (claimed,) = claim_due(session, clock.now())
    # The "crashed" sender delivered the row but never recorded it.
    row, _case, message = worker.compose_row(claimed.id)
    asyncio.run(app.sender().send(message, row.to_addrs))
    first = smtp_server.wait_for(1)[0].message["Message-ID"]
    assert asyncio.run(worker.flush()).sent == []  # still leased to the dead sender
    clock.advance(seconds=CLAIM_LEASE.total_seconds() + 1)
    report = asyncio.run(worker.flush())
    second = smtp_server.wait_for(2)[1].message["Message-ID"]
    assert report.sent == [first] and second == first
    with app.db.session() as session:
        (row,) = session.scalars(select(Outbox))
        assert (row.status, row.attempts) == ("sent", 2)
