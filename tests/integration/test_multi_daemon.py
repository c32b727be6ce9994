"""Three `mailbot run` daemons on one PostgreSQL share three mailboxes, one daemon per mailbox.

Why: DESIGN.md "Scale" promises that daemons added on one PostgreSQL share the work and a
dead one loses nothing. Real processes, a real PostgreSQL database (``pg_url``), three
Dovecot accounts and one SMTP sink: mail is APPENDed while they run, the daemon holding
mailbox leases is SIGKILLed midway and deliberately NOT restarted (the survivors must take
its mailboxes over on their own), and at the end everything is checked as in bench/chaos.py
plus an audit of the lease handovers from the daemons' ``lease taken`` log lines.
"""

from __future__ import annotations

import random
import re
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaos import ChaosResult, _check, _Daemon, _Mail, _wait_drained  # noqa: E402
from factories import config_data, imap_mailbox, make_message, smtp_section  # noqa: E402
from servers import imap_connect  # noqa: E402

from mailbot.db.models import MailboxLease  # noqa: E402
from mailbot.db.session import Database  # noqa: E402

pytestmark = pytest.mark.integration

LEASE_S = 3.0
TAKEN = re.compile(r"lease taken: mailbox=(\S+) holder=(\S+) at=(\S+) until=(\S+) "
                   r"previous=(\S+) previous_until=(\S+)")
RELEASED = re.compile(r"lease released: mailbox=(\S+) holder=(\S+) at=(\S+)")


def _workload(box: int, count: int, rng: random.Random) -> list[_Mail]:
    """Per mailbox: new requests, follow-ups on earlier ones there, exact re-deliveries."""
    mails: list[_Mail] = []
    base = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    while len(mails) < count:
        n, roll = len(mails), rng.random()
        earlier = [m for m in mails if m.new_request]
        if roll < 0.1 and earlier:
            original = rng.choice(earlier)
            sender = original.raw.split(b"From: ", 1)[1].split(b"\n", 1)[0].decode().strip()
            mid = f"<md{box}-fu{n}@customer.test>"
            mails.append(_Mail(make_message(sender=sender, subject="Re: request", message_id=mid,
                                            body=f"follow-up {n}\n",
                                            In_Reply_To=original.message_id,
                                            date=base + timedelta(seconds=n)), mid, False))
        elif roll < 0.15 and mails:
            mails.append(rng.choice(mails))  # the same bytes delivered twice
        else:
            mid = f"<md{box}-{n}@customer.test>"
            mails.append(_Mail(make_message(sender=f"Customer {box}-{n} <c{box}x{n}@cust.test>",
                                            subject=f"request {box}-{n}", message_id=mid,
                                            body=f"Hello,\nrequest {box}-{n}.\n",
                                            date=base + timedelta(seconds=n)), mid, True))
    return mails


def _append(account: Any, mails: list[_Mail], bursts: int, errors: list[BaseException]) -> None:
    """APPEND one mailbox's mail in contiguous bursts (a follow-up never precedes its request)."""
    try:
        size = -(-len(mails) // bursts)
        for start in range(0, len(mails), size):
            client = imap_connect(account)
            try:
                for mail in mails[start:start + size]:
                    client.append("INBOX", mail.raw)
            finally:
                client.logout()
            time.sleep(1.5)
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def _holders(db: Database) -> dict[str, str]:
    with db.session() as session:
        return {row.mailbox: row.holder for row in session.scalars(select(MailboxLease))}


def _audit_leases(logs: list[str]) -> list[str]:
    """Problems in the handover chain: per mailbox, each take must follow from the one before.

    A take either found the row free (the previous holder had released it) or took it
    over from exactly the previous taker, no earlier than that holder's last renewal
    said its lease ran until. Any "lease lost" means two daemons overlapped.
    """
    problems: list[str] = []
    takes: dict[str, list[tuple[datetime, str, str, str]]] = {}
    released: set[tuple[str, str]] = set()
    for text in logs:
        if "lease lost" in text:
            problems.append("a daemon lost a lease it thought it held")
        for box, holder, at, _until, prev, prev_until in TAKEN.findall(text):
            takes.setdefault(box, []).append((datetime.fromisoformat(at), holder, prev, prev_until))
        released.update((box, holder) for box, holder, _at in RELEASED.findall(text))
    for box, chain in takes.items():
        chain.sort()
        for (_at0, holder0, _p0, _u0), (at, holder, prev, prev_until) in zip(chain, chain[1:]):
            if prev == "-":
                if (box, holder0) not in released:
                    problems.append(f"{box}: {holder} took a free row {holder0} never released")
            elif prev != holder0:
                problems.append(f"{box}: {holder} took over from {prev}, but {holder0} held it")
            elif at < datetime.fromisoformat(prev_until):
                problems.append(f"{box}: {holder} took over at {at} before {prev_until}")
    return problems


def test_three_daemons_share_three_mailboxes(tmp_path: Path, dovecot: Any, pg_url: str,
                                             smtp_server: Any) -> None:
    # Three daemons, one SIGKILLed midway: every mail recorded once, one sent ack per case,
    # one lease holder per mailbox at any time, and its mailboxes taken over within seconds.
    started = time.monotonic()
    rng = random.Random(5)
    dovecot.ensure_running()
    accounts = [dovecot.new_account() for _ in range(3)]
    data = config_data(
        tmp_path,
        database={"url": pg_url, "mailbox_lease": f"{LEASE_S:g}s"},
        mailboxes=[imap_mailbox(account, name=f"box{i}", poll_interval="1s", batch_size=5)
                   for i, account in enumerate(accounts)],
        smtp=smtp_section(smtp_server, retry_max_delay="1s", claim_lease="2s"),
        loop_protection={"max_acks_per_sender": 1000},
    )
    config_path = tmp_path / "mailbot.toml"
    config_path.write_text(tomli_w.dumps(data))
    db = Database(pg_url)
    db.upgrade()
    workloads = [_workload(i, 25, rng) for i in range(3)]
    workload = [mail for mails in workloads for mail in mails]
    new_ids = {m.message_id for m in workload if m.new_request}

    daemons = [_Daemon(config_path, tmp_path / f"daemon{i}.log") for i in range(3)]
    try:
        for daemon in daemons:
            daemon.start()
        for daemon in daemons:
            daemon.wait_running()
        errors: list[BaseException] = []
        feeders = [threading.Thread(target=_append, args=(a, w, 3, errors), daemon=True)
                   for a, w in zip(accounts, workloads)]
        for feeder in feeders:
            feeder.start()
        time.sleep(2.0)  # the first burst is being drained

        holders = _holders(db)
        assert len(holders) == 3, holders
        victim_holder = next(iter(holders.values()))
        victim_pid = int(victim_holder.split(":")[1])
        victim = next(d for d in daemons if d.proc is not None and d.proc.pid == victim_pid)
        orphans = sorted(box for box, holder in holders.items() if holder == victim_holder)
        victim.kill()
        killed_at = time.monotonic()
        takeover_s: float | None = None
        while time.monotonic() - killed_at < 4 * LEASE_S + 5:
            now_held = _holders(db)
            if all(now_held.get(box, victim_holder) != victim_holder for box in orphans):
                takeover_s = time.monotonic() - killed_at
                break
            time.sleep(0.1)
        print(f"multi-daemon: SIGKILLed {victim_holder} holding {orphans}; "
              f"taken over after {takeover_s}s (lease {LEASE_S}s)")
        assert takeover_s is not None and takeover_s < LEASE_S + 3.0

        for feeder in feeders:
            feeder.join(60)
        assert not errors, errors
        _wait_drained(db, new_ids, deadline=time.monotonic() + 40)
        survivors = [d for d in daemons if d is not victim]
        codes = [d.terminate() for d in survivors]
    finally:
        for daemon in daemons:
            if daemon.proc is not None and daemon.proc.poll() is None:
                daemon.proc.kill()
                daemon.proc.wait()
    assert codes == [0, 0]

    result = ChaosResult(messages=len(workload), new_requests=len(new_ids), kills=1)
    _check(db, workload, new_ids, smtp_server, result)
    with db.session() as session:
        assert session.scalars(select(MailboxLease)).all() == []  # clean stops released
    db.dispose()
    logs = [d.log_path.read_text(errors="replace") for d in daemons]
    result.problems.extend(_audit_leases(logs))
    result.problems.extend(f"daemon{i}: IntegrityError in its log"
                           for i, text in enumerate(logs) if "IntegrityError" in text)
    result.seconds = time.monotonic() - started
    print(result.summary())
    assert result.ok, "\n".join([result.summary(), *result.problems,
                                 *(text[-3000:] for text in logs)])
    assert sum(text.count("lease taken") for text in logs) >= 3 + len(orphans)
    assert result.seconds < 60
