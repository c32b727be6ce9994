"""Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

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
