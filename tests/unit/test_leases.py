"""Mailbox leases and case numbers with several daemons on one database (DESIGN.md, "Scale")."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from factories import deliver, make_app, make_config, make_message
from mailbot.daemon import run_once
from mailbot.db.models import Case, MailboxLease
from mailbot.db.session import Database
from mailbot.lease import MailboxLeases
from mailbot.store.cases import next_number

LEASE = timedelta(seconds=15)


class _Wall:
    """A settable wall clock shared by the two "daemons" of a test."""

    def __init__(self) -> None:
        self.at = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    url = (f"sqlite:///{tmp_path / 'leases.db'}" if request.param == "sqlite"
           else request.getfixturevalue("pg_url"))
    database = Database(url)
    database.upgrade()
    request.addfinalizer(database.dispose)
    return database


def test_take_renew_refuse_take_over_release(db: Database) -> None:
    # One holder at a time: renewals extend it, others are refused until it expires or is released.
    wall = _Wall()
    a = MailboxLeases(db, "host-a:1:aa", LEASE, now=wall)
    b = MailboxLeases(db, "host-b:2:bb", LEASE, now=wall)
    assert a.acquire("support")
    assert not b.acquire("support")
    wall.at += timedelta(seconds=10)
    assert a.acquire("support")  # renewed: now valid until +25 s
    wall.at += timedelta(seconds=10)
    assert not b.acquire("support")  # would have expired at +15 s without the renewal
    state = a.current("support")
    assert state is not None and state.holder == a.holder
    assert state.expires_at == wall.at + timedelta(seconds=5)
    wall.at += timedelta(seconds=5)  # a stopped renewing (SIGKILL): expired now
    assert b.acquire("support")
    assert not a.acquire("support")  # the old holder has lost it
    assert a.current("support").holder == b.holder  # type: ignore[union-attr]
    assert not a.release("support")  # not a's to give back
    assert b.release("support")
    assert a.current("support") is None
    assert a.acquire("support")
    assert b.acquire("other")  # leases are per mailbox
    with db.session() as session:
        assert len(session.scalars(select(MailboxLease)).all()) == 2


def test_concurrent_acquire_has_one_winner(db: Database) -> None:
    # Eight daemons racing for a free mailbox: exactly one gets it, nobody gets an error.
    holders = [MailboxLeases(db, f"host:{n}:x", LEASE) for n in range(8)]
    won: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(holders))

    def race(leases: MailboxLeases) -> None:
        try:
            barrier.wait()
            if leases.acquire("support"):
                won.append(leases.holder)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(h,)) for h in holders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(won) == 1


def test_concurrent_case_numbers_have_no_gaps_or_duplicates(db: Database) -> None:
    # Writers opening cases at once, the first one creating the counter row: 1..N, no errors.
    numbers: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def writer() -> None:
        try:
            barrier.wait()
            for _ in range(10):
                with db.transaction() as session:
                    numbers.append(next_number(session))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sorted(numbers) == list(range(1, 61))


def test_poll_once_skips_a_mailbox_leased_by_a_running_daemon(tmp_path: Path) -> None:
    # `poll --once` leaves a mailbox alone while another daemon holds it, and drains it after.
    app = make_app(make_config(tmp_path))
    deliver(Path(app.config.mailboxes[0].path or ""), make_message(), "1")
    other = MailboxLeases(app.db, "elsewhere:9:zz", LEASE)
    assert other.acquire("support")
    report = run_once(app)
    assert report.ok and not report.drained
    assert report.skipped["support"].startswith("leased to elsewhere:9:zz until ")
    other.release("support")
    report = run_once(app)
    assert report.drained[0].count("stored") == 1 and not report.skipped
    with app.db.session() as session:
        assert session.scalars(select(Case.number)).all() == [1]
        assert session.scalar(select(MailboxLease)) is None  # released after its pass
