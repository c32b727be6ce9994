"""Shared pytest fixtures for mailbot's tests.

Real servers on loopback (see tests/servers.py for why real ones):
    dovecot       session-wide private Dovecot (IMAP on 127.0.0.1, random port)
    imap_account  a fresh, empty mailbox on it for each test
    smtp_server   an SMTP sink recording what mailbot sends, one per test

Without the dovecot binary the IMAP tests are skipped on a workstation but FAIL under CI=true,
so a CI machine missing it cannot go green by skipping the integration suite.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

# tests/ has no __init__.py; make `import servers` work whatever pytest's import mode is.
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

from servers import Account, Dovecot, SmtpSink, find_dovecot  # noqa: E402

DOVECOT_MISSING = (
    "Dovecot is not installed (no `dovecot` on PATH or in /usr/sbin). "
    "`make test` installs it (target system-deps), or run: apt-get install dovecot-imapd"
)


def _require_dovecot() -> str:
    """Path of the dovecot binary; skip the test without it, or fail it when CI=true."""
    binary = find_dovecot()
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(DOVECOT_MISSING, pytrace=False)
        pytest.skip(DOVECOT_MISSING)
    return binary


# --------------------------------------------------------------------------- real servers


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """One private Dovecot for the whole session; tests isolate themselves via `imap_account`."""
    binary = _require_dovecot()
    server = Dovecot(tmp_path_factory.mktemp("dovecot"), binary=binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def imap_account(dovecot: Dovecot) -> Account:
    """A never-used user with an empty INBOX (restarts Dovecot if an earlier test left it down)."""
    dovecot.ensure_running()
    return dovecot.new_account()


@pytest.fixture
def smtp_server() -> Iterator[SmtpSink]:
    """An SMTP sink on 127.0.0.1 and a free port, started for one test and stopped after it."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


# --------------------------------------------------------------------------- PostgreSQL

PG_ADMIN = os.environ.get("MAILBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"mailbot_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:  # no server here: fatal in CI, a skip on a laptop
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL not reachable at {PG_ADMIN}: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


