"""Mailbox leases: several daemons on one PostgreSQL, each mailbox polled by one at a time.

Why a lease row and not an advisory lock: a lock lives on a connection, and the pool
recycles connections under us; a row with an expiry survives that, is visible to an
admin (``SELECT * FROM mailbox_leases``) and expires by itself when its holder is
SIGKILLed. Taking, renewing and taking over are one short transaction that reads the
row ``FOR UPDATE`` (on SQLite, ``BEGIN IMMEDIATE`` makes the single writer the lock),
so two daemons can never both believe they hold a mailbox.

Expiry is compared in wall-clock time of the daemons' hosts (not the pipeline's clock,
which ``--now`` may fix in the past): hosts sharing a database must keep NTP time, and
the lease (``[database] mailbox_lease``) must be much longer than their skew.

Every change of holder is logged as one ``lease taken``/``lease released``/``lease lost``
line with its times, so the handovers can be audited from the logs.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from mailbot.clock import SystemClock, as_utc
from mailbot.db.models import MailboxLease
from mailbot.db.session import Database

log = logging.getLogger("mailbot.lease")


def daemon_id() -> str:
    """``hostname:pid:random``: unique per daemon, readable for an admin, never reused."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class LeaseState:
    mailbox: str
    holder: str
    expires_at: datetime


class MailboxLeases:
    """Take, renew and release mailbox leases for one holder (one daemon or one ``poll``)."""

    def __init__(self, db: Database, holder: str, duration: timedelta,
                 now: Callable[[], datetime] = SystemClock().now) -> None:
        self.db = db
        self.holder = holder
        self.duration = duration
        self.now = now

    def acquire(self, mailbox: str) -> bool:
        """Take the lease (free, expired, or already ours: then it is renewed); False if held.

        The read and the write are one transaction with the row locked, so a takeover
        decision is made on the row as it is, never on a stale copy.
        """
        now = self.now()
        until = now + self.duration
        with self.db.transaction() as session:
            row = session.scalar(select(MailboxLease).where(MailboxLease.mailbox == mailbox)
                                 .with_for_update())
            if row is None:
                insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
                created = session.execute(
                    insert(MailboxLease)
                    .values(mailbox=mailbox, holder=self.holder, expires_at=until, taken_at=now)
                    .on_conflict_do_nothing(index_elements=["mailbox"])
                    .returning(MailboxLease.id)
                ).scalar_one_or_none()
                if created is None:  # another daemon inserted it between our read and write
                    return False
                log.info("lease taken: mailbox=%s holder=%s at=%s until=%s previous=- "
                         "previous_until=-", mailbox, self.holder, now.isoformat(),
                         until.isoformat())
                return True
            if row.holder == self.holder:
                row.expires_at = until
                log.debug("lease renewed: mailbox=%s holder=%s until=%s", mailbox, self.holder,
                          until.isoformat())
                return True
            expires = as_utc(row.expires_at)
            if expires > now:
                return False
            previous = row.holder
            row.holder, row.expires_at, row.taken_at = self.holder, until, now
        log.info("lease taken: mailbox=%s holder=%s at=%s until=%s previous=%s previous_until=%s",
                 mailbox, self.holder, now.isoformat(), until.isoformat(), previous,
                 expires.isoformat())
        return True

    def release(self, mailbox: str) -> bool:
        """Give the mailbox back at once (a clean stop), so no one waits for the expiry."""
        with self.db.transaction() as session:
            gone = session.execute(
                delete(MailboxLease).where(MailboxLease.mailbox == mailbox,
                                           MailboxLease.holder == self.holder)
            ).rowcount
        if gone:
            log.info("lease released: mailbox=%s holder=%s at=%s", mailbox, self.holder,
                     self.now().isoformat())
        return bool(gone)

    def current(self, mailbox: str) -> LeaseState | None:
        """The lease as stored (expired or not), for messages and tests."""
        with self.db.session() as session:
            row = session.scalar(select(MailboxLease).where(MailboxLease.mailbox == mailbox))
            if row is None:
                return None
            return LeaseState(row.mailbox, row.holder, as_utc(row.expires_at))
