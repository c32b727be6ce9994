"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from mailbot.db.models import Base
from mailbot.db.session import Database


def check(url: str) -> None:
    db = Database(url)
    with pytest.raises(Exception, match="mailbot db upgrade"):
        db.require_current()
    assert db.upgrade()[0] is None
    db.require_current()
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    config = db._alembic()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert db.current_revision() is None
    db.upgrade()
    db.require_current()
    db.dispose()


def test_sqlite_migrations_match_models(tmp_path: Path) -> None:
    # Upgrading an empty SQLite file gives the models' schema; downgrade and upgrade again work.
    check(f"sqlite:///{tmp_path / 'm.db'}")


def test_postgresql_migrations_match_models(pg_url: str) -> None:
    # The same migrations on PostgreSQL give the same schema.
    check(pg_url)


def check_history_stays_registered(url: str) -> None:
    """A case recorded before 0005_customers reads as registered after it, not as a stranger's."""
    db = Database(url)
    config = db._alembic()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO cases (number, token, subject, status, mailbox, customer_email, "
            "customer_name, service_level, language, timezone, timezone_source, opened_at, "
            "updated_at) VALUES (1, '[SUP-1]', 'old', 'closed', 'support', 'a@old.example', '', "
            "'standard', 'en', 'UTC', 'default', :at, :at)"), {"at": "2025-01-02 03:04:05"})
    db.upgrade()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT registered FROM cases")).scalar_one() in (True, 1)
        assert conn.execute(text("SELECT count(*) FROM customers")).scalar_one() == 0
    db.dispose()


def test_sqlite_existing_cases_stay_registered(tmp_path: Path) -> None:
    # Upgrading a 0004 SQLite database with a case in it marks that case registered.
    check_history_stays_registered(f"sqlite:///{tmp_path / 'm.db'}")


def test_postgresql_existing_cases_stay_registered(pg_url: str) -> None:
    # The same upgrade on PostgreSQL.
    check_history_stays_registered(pg_url)


def check_outbox_rcpt_backfilled(url: str) -> None:
    """Rows queued before 0006 get their ``rcpt`` from ``to_addrs``, so loop protection
    counts the acks sent before the upgrade too."""
    db = Database(url)
    config = db._alembic()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0005")
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO outbox (kind, cause, message_id, to_addrs, cc_addrs, \"references\", "
            "language, context, status, attempts, next_attempt_at, created_at) VALUES "
            "('ack', '<m1@c.test>', '<a1@x>', :to, '[]', '[]', 'en', '{}', 'sent', 1, :at, :at)"),
            {"to": '["Alice@Customer.test"]', "at": "2025-01-02 03:04:05"})
    db.upgrade()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT rcpt FROM outbox")).scalar_one() == "alice@customer.test"
    db.dispose()


def test_sqlite_outbox_rcpt_is_backfilled(tmp_path: Path) -> None:
    check_outbox_rcpt_backfilled(f"sqlite:///{tmp_path / 'm.db'}")


def test_postgresql_outbox_rcpt_is_backfilled(pg_url: str) -> None:
    check_outbox_rcpt_backfilled(pg_url)
