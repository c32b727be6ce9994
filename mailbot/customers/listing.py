"""``mailbot customers list``: the directory as rows → plain data → a text table or JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from mailbot.config import Config
from mailbot.customers.directory import organization_named
from mailbot.db.models import Customer
from mailbot.db.session import Database
from mailbot.views import Table


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def list_customers(db: Database, config: Config, organization: str | None = None
                   ) -> list[dict[str, Any]]:
    """Customers by organization (those of none last), then address; ``organization``
    filters (ignoring case).

    ``organization_configured`` tells whether the name is an ``[[organizations]]``
    entry (its manager and settings apply) or a plain name.
    """
    # Filtered and sorted in Python: SQLite's lower() folds ASCII only (names are often
    # Cyrillic), and the databases disagree on where NULLs sort; the directory is small.
    wanted = organization.strip().casefold() if organization is not None else None
    with db.session() as session:
        customers = sorted(
            (c for c in session.scalars(select(Customer))
             if wanted is None or (c.organization or "").casefold() == wanted),
            key=lambda c: (c.organization is None, (c.organization or "").casefold(), c.email))
        return [{
            "email": c.email,
            "name": c.name,
            "organization": c.organization,
            "organization_configured": bool(c.organization
                                            and organization_named(config, c.organization)),
            "timezone": c.timezone,
            "language": c.language,
            "service_level": c.service_level,
            "created_at": _iso(c.created_at),
            "updated_at": _iso(c.updated_at),
        } for c in customers]


def customers_table(rows: list[dict[str, Any]]) -> Table:
    lines = []
    for row in rows:
        organization = row["organization"] or "-"
        if row["organization"] and not row["organization_configured"]:
            organization += " (plain)"
        lines.append((row["email"], row["name"] or "-", organization, row["timezone"] or "-",
                      row["language"] or "-", row["service_level"] or "-"))
    return Table(("EMAIL", "NAME", "ORGANIZATION", "TIME ZONE", "LANG", "LEVEL"), lines,
                 empty="no customers")
