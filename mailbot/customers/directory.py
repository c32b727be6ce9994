"""What the customer directory says about a sender when their case opens.

The order (DESIGN.md, "Overnight follow-ups" and "Managers"): the customer's own
settings, else their organization's, else inference and the defaults. A directory
row's organization, when it names an ``[[organizations]]`` entry, is that
customer's organization whatever their address's domain (a consultant writing from
gmail is still Acme's), and brings Acme's manager, level, zone and language as the
second choice; a plain organization name (no such entry) is recorded on the case
but brings no settings — and it also means the domain match does not apply, since
the directory said which organization this person belongs to. Without a row, the
domain match of ``[[organizations]]`` decides, as before the directory existed.

**Registered** means known: a directory row, or an address an ``[[organizations]]``
entry claims (the admin declared those people customers already). Everyone else
still gets a case, marked ``registered = false``.

Cost: one SELECT on the unique ``customers.email`` index per new case; a second,
``LIMIT 1`` probe only for an unregistered sender in ``unregistered_ack = "auto"``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.assign import find_organization
from mailbot.config import Config, OrganizationConfig
from mailbot.db.models import Case, Customer

log = logging.getLogger("mailbot.customers")

ACK = "ack"
ACK_UNREGISTERED = "ack_unregistered"


@dataclass(frozen=True)
class Profile:
    """A sender as the directory and the configured organizations know them.

    ``organization`` is the configured entry whose manager and settings apply (or
    None); ``organization_name`` is what the case records — that entry's name or a
    plain name from the directory. The settings are the customer's own (None: not set).
    """

    registered: bool
    in_directory: bool
    name: str | None
    organization: OrganizationConfig | None
    organization_name: str | None
    timezone: str | None
    language: str | None
    service_level: str | None


def organization_named(config: Config, name: str) -> OrganizationConfig | None:
    """The ``[[organizations]]`` entry called ``name``, ignoring case and surrounding blanks."""
    wanted = name.strip().casefold()
    for organization in config.organizations:
        if organization.name.strip().casefold() == wanted:
            return organization
    return None


def customer_profile(session: Session, config: Config, email: str) -> Profile:
    """The sender's profile for a new case (``email`` as the pipeline has it: lowercased)."""
    row = None
    if email:
        row = session.execute(
            select(Customer.name, Customer.organization, Customer.timezone, Customer.language,
                   Customer.service_level).where(Customer.email == email)).first()
    if row is None:
        organization = find_organization(config, email) if email else None
        return Profile(organization is not None, False, None, organization,
                       organization.name if organization else None, None, None, None)
    if row.organization:
        organization = organization_named(config, row.organization)
        organization_name: str | None = organization.name if organization else row.organization
    else:
        organization = find_organization(config, email)
        organization_name = organization.name if organization else None
    level = row.service_level
    if level and level not in config.service_levels:
        # Imported when the level existed; the config lost it since. The case must still open.
        log.warning("customer %s: service level %r is no longer configured; ignoring it",
                    email, level)
        level = None
    return Profile(True, True, row.name or None, organization, organization_name,
                   row.timezone or None, row.language or None, level)


def directory_in_use(session: Session) -> bool:
    return session.scalar(select(Customer.id).limit(1)) is not None


def ack_kind(session: Session, config: Config, case: Case) -> str:
    """Which acknowledgement a new case gets: ``ack``, or ``ack_unregistered`` for a stranger
    when ``[customers] unregistered_ack`` says so (``auto``: once the directory has rows)."""
    if case.registered:
        return ACK
    mode = config.customers.unregistered_ack
    if mode == "always" or (mode == "auto" and directory_in_use(session)):
        return ACK_UNREGISTERED
    return ACK
