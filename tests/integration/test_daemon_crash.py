"""The crash windows the chaos run rarely hits, each put in place exactly and recovered from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from factories import config_data, imap_mailbox, make_app, make_message, smtp_section
from servers import imap_append, imap_connect
from sqlalchemy import func, select, update

from mailbot.config import config_from_dict
from mailbot.daemon import drain_mailbox, run_once
from mailbot.db.models import Case, Message, Outbox

pytestmark = pytest.mark.integration


def test_killed_between_commit_and_imap_flags(tmp_path: Path, imap_account: Any,
                                              smtp_server: Any) -> None:
    # Killed after the commit but before \Seen was set: the next drain sets the flag and
    # records it, without a second case or a second ack.
    uid = imap_append(imap_account, make_message())
    data = config_data(tmp_path, mailboxes=[imap_mailbox(imap_account)],
                       smtp=smtp_section(smtp_server))
    app = make_app(config_from_dict(data, source=tmp_path / "mailbot.toml"))
    drain_mailbox(app, app.config.mailboxes[0])
    # Put back the state a SIGKILL right after the commit leaves: committed, not flagged.
    with app.db.transaction() as session:
        session.execute(update(Message).values(imap_done=False))
    client = imap_connect(imap_account)
    client.select_folder("INBOX")
    client.remove_flags([uid], [b"\\Seen"], silent=True)
    client.logout()
    report = run_once(app)
    assert report.ok and report.drained[0].outcomes == []
    client = imap_connect(imap_account)
    client.select_folder("INBOX", readonly=True)
    flags = client.get_flags([uid])[uid]
    client.logout()
    assert b"\\Seen" in flags
    with app.db.session() as session:
        assert session.scalar(select(func.count(Case.id))) == 1
        assert session.scalar(select(func.count(Outbox.id)).where(Outbox.kind == "ack")) == 1
        assert session.scalar(select(Message.imap_done).where(Message.direction == "in")) is True
    acks = [m for m in smtp_server.wait_for(1) if ".ack." in str(m.message["Message-ID"])]
    assert len(acks) == 1


def test_dovecot_crash_mid_fetch_neither_skips_nor_reprocesses(tmp_path: Path, dovecot: Any,
                                                               imap_account: Any,
                                                               smtp_server: Any) -> None:
    # Dovecot SIGKILLed while the daemon is fetching a big backlog in batches: the watcher
    # reconnects with backoff and every message ends up in one case with one ack.
    import asyncio
    import threading
    import time

    from servers import imap_append_many

    from mailbot.clock import SystemClock
    from mailbot.daemon import App, Daemon
    from mailbot.sdnotify import Notifier

    count = 150
    imap_append_many(imap_account, [
        make_message(sender=f"c{n}@customer.test", message_id=f"<mf{n}@customer.test>",
                     subject=f"request {n}") for n in range(count)])
    data = config_data(tmp_path, mailboxes=[imap_mailbox(imap_account, batch_size=5)],
                       smtp=smtp_section(smtp_server))
    app = make_app(config_from_dict(data, source=tmp_path / "mailbot.toml"))
    app = App.build(app.config, clock=SystemClock(), db=app.db)
    daemon = Daemon(app, notifier=Notifier({}))
    thread = threading.Thread(target=lambda: asyncio.run(daemon.run(install_signals=False)),
                              daemon=True)
    thread.start()
    try:
        smtp_server.wait_for(10, timeout=30)
        dovecot.kill()  # mid-drain: some batch is being fetched or flagged right now
        time.sleep(0.5)
        dovecot.start()
        smtp_server.wait_for(count, timeout=60)
    finally:
        daemon.request_stop()
        thread.join(20)
    with app.db.session() as session:
        assert session.scalar(select(func.count(Case.id))) == count
        inbound = session.scalar(select(func.count(Message.id)).where(Message.direction == "in"))
        assert inbound == count
        sent = session.scalar(select(func.count(Outbox.id)).where(Outbox.kind == "ack",
                                                                  Outbox.status == "sent"))
        assert sent == count
    ids = [str(m.message["Message-ID"]) for m in smtp_server.messages
           if ".ack." in str(m.message["Message-ID"])]
    assert len(ids) == len(set(ids)) == count
