"""The real-server fixtures work: Dovecot speaks the IMAP mailbot relies on, the SMTP sink records
and fails on demand. If these fail, every other integration test is meaningless."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import email.utils
import threading
import time
from email.message import EmailMessage

import aiosmtplib
import pytest

from servers import Account, Dovecot, SmtpSink, imap_append, imap_connect

pytestmark = pytest.mark.integration


def make_mail(subject: str, body: str = "Hello\n", sender: str = "alice@customer.test") -> bytes:
    """A small, well-formed RFC 5322 message as raw bytes."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@example.test"
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain="customer.test")
    msg["Date"] = email.utils.format_datetime(dt.datetime.now(dt.timezone.utc))
    msg.set_content(body)
    return msg.as_bytes(policy=email.policy.SMTP)


def test_append_then_fetch_back(imap_account: Account) -> None:
    # A message delivered by APPEND comes back byte for byte, with the INTERNALDATE we gave it.
    raw = make_mail("Printer on fire", "Привет, it is on fire.\n")
    received = dt.datetime(2025, 3, 14, 9, 26, 53, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    uid = imap_append(imap_account, raw, flags=[b"$Test"], msg_time=received)
    assert uid == 1

    client = imap_connect(imap_account)
    try:
        info = client.select_folder("INBOX", readonly=True)
        assert info[b"EXISTS"] == 1
        caps = client.capabilities()
        for cap in (b"IDLE", b"MOVE", b"UIDPLUS"):
            assert cap in caps
        client.normalise_times = False  # keep the server's zone so we compare exact instants
        data = client.fetch([uid], ["BODY.PEEK[]", "INTERNALDATE", "FLAGS"])[uid]
    finally:
        client.logout()
    assert data[b"BODY[]"] == raw
    assert data[b"INTERNALDATE"] == received
    assert b"$Test" in data[b"FLAGS"]
    assert b"\\Seen" not in data[b"FLAGS"]  # BODY.PEEK must not mark it read


def test_each_account_is_a_fresh_empty_mailbox(dovecot: Dovecot, imap_account: Account) -> None:
    # Two accounts from the pool are distinct users with separate, empty mailboxes.
    other = dovecot.new_account()
    assert other.username != imap_account.username
    imap_append(imap_account, make_mail("only in the first"))
    client = imap_connect(other)
    try:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()
    assert imap_account.maildir.is_dir()


def test_idle_sees_append_from_another_connection(imap_account: Account) -> None:
    # An IDLEing connection is told about a message APPENDed by another connection within a second.
    client = imap_connect(imap_account)
    try:
        client.select_folder("INBOX")
        client.idle()
        appended_at = time.monotonic()
        imap_append(imap_account, make_mail("wake up"))
        responses = client.idle_check(timeout=2.0)
        latency = time.monotonic() - appended_at
        client.idle_done()
    finally:
        client.logout()
    assert (1, b"EXISTS") in responses
    # Dovecot batches change notifications for a fixed 0.5 s, so ~0.5 s is the floor here.
    assert latency < 1.0, f"IDLE notification took {latency:.2f}s"


def test_move_to_another_folder(imap_account: Account) -> None:
    # UID MOVE takes a message out of INBOX into another folder (created by the helper on APPEND).
    uid = imap_append(imap_account, make_mail("to be processed"))
    imap_append(imap_account, make_mail("placeholder"), folder="Processed")
    client = imap_connect(imap_account)
    try:
        client.select_folder("INBOX")
        client.move([uid], "Processed")
        assert client.search("ALL") == []
        status = client.folder_status("Processed", [b"MESSAGES"])
    finally:
        client.logout()
    assert status[b"MESSAGES"] == 2


def test_restart_keeps_mail_port_and_uidvalidity(dovecot: Dovecot, imap_account: Account) -> None:
    # After a clean restart and after a SIGKILL crash the same port serves the same mail.
    imap_append(imap_account, make_mail("survives restarts"))
    client = imap_connect(imap_account)
    validity = client.select_folder("INBOX")[b"UIDVALIDITY"]
    port = dovecot.port

    dovecot.restart()
    with pytest.raises(Exception):  # the old connection was dropped by the shutdown
        client.noop()
    client.shutdown()

    dovecot.kill()
    assert not dovecot.running
    dovecot.start()
    assert dovecot.port == port

    client = imap_connect(imap_account)
    try:
        info = client.select_folder("INBOX")
    finally:
        client.logout()
    assert info[b"EXISTS"] == 1
    assert info[b"UIDVALIDITY"] == validity


def test_kill_mid_idle_drops_the_connection(dovecot: Dovecot, imap_account: Account) -> None:
    # A SIGKILLed Dovecot breaks an IDLEing connection at once; the same account works after start().
    client = imap_connect(imap_account)
    client.select_folder("INBOX")
    client.idle()
    dovecot.kill()
    started = time.monotonic()
    # imapclient 4.x quirk worth knowing: on a dead socket idle_check() returns [] immediately
    # (it does not wait for its timeout, nor raise); the EOF surfaces in idle_done().
    try:
        assert client.idle_check(timeout=3) == []
    except Exception:
        pass  # a future imapclient may raise here instead; either way the loss must be prompt
    assert time.monotonic() - started < 1.0
    with pytest.raises(Exception):
        client.idle_done()
    client.shutdown()

    dovecot.start()
    assert imap_append(imap_account, make_mail("after the crash")) == 1


def test_smtp_sink_records_what_aiosmtplib_sends(smtp_server: SmtpSink) -> None:
    # A message sent with aiosmtplib arrives in the sink with its envelope and parseable content.
    msg = EmailMessage()
    msg["From"] = "support@example.test"
    msg["To"] = "alice@customer.test"
    msg["Subject"] = "[SUP-1] Заявка принята"
    msg.set_content("We got it.\n")

    async def send() -> None:
        await aiosmtplib.send(
            msg,
            hostname=smtp_server.host,
            port=smtp_server.port,
            sender="bounces@example.test",
            recipients=["alice@customer.test", "bob@customer.test"],
            username="mailbot",
            password="secret",
            start_tls=False,
            use_tls=False,
        )

    asyncio.run(send())
    (got,) = smtp_server.wait_for(1, timeout=5)
    assert got.mail_from == "bounces@example.test"
    assert got.rcpt_tos == ("alice@customer.test", "bob@customer.test")
    assert got.auth_login == "mailbot"
    assert got.message["Subject"] == "[SUP-1] Заявка принята"
    assert email.message_from_bytes(got.content)["To"] == "alice@customer.test"


def test_smtp_sink_injected_failures_reach_the_client(smtp_server: SmtpSink) -> None:
    # fail_next answers DATA with 451 then 550 as asked, and the client sees exactly those codes.
    msg = EmailMessage()
    msg["From"] = "support@example.test"
    msg["To"] = "alice@customer.test"
    msg["Subject"] = "retry me"
    msg.set_content("x\n")

    async def send() -> None:
        await aiosmtplib.send(msg, hostname=smtp_server.host, port=smtp_server.port)

    smtp_server.fail_next(451, count=1)
    with pytest.raises(aiosmtplib.SMTPResponseException) as temporary:
        asyncio.run(send())
    assert temporary.value.code == 451

    smtp_server.fail_all(550)
    for _ in range(2):
        with pytest.raises(aiosmtplib.SMTPResponseException) as permanent:
            asyncio.run(send())
        assert permanent.value.code == 550

    smtp_server.reset_failures()
    asyncio.run(send())
    assert len(smtp_server.wait_for(1, timeout=5)) == 1
    assert [m.response.split()[0] for m in smtp_server.rejected] == ["451", "550", "550"]


def test_smtp_sink_outage_and_recovery(smtp_server: SmtpSink) -> None:
    # While the sink is stopped connections are refused; after start() the same port works again.
    msg = EmailMessage()
    msg["From"] = "support@example.test"
    msg["To"] = "alice@customer.test"
    msg["Subject"] = "after the outage"
    msg.set_content("x\n")

    async def send() -> None:
        await aiosmtplib.send(msg, hostname=smtp_server.host, port=smtp_server.port, timeout=5)

    port = smtp_server.port
    smtp_server.stop()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        asyncio.run(send())
    smtp_server.start()
    assert smtp_server.port == port

    # wait_for blocks on a condition, so a message sent from another thread wakes it promptly.
    sender = threading.Thread(target=lambda: asyncio.run(send()))
    sender.start()
    assert len(smtp_server.wait_for(1, timeout=5)) == 1
    sender.join(5)
