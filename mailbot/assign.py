"""Who owns a new case: the organization's personal manager, else the next in turn.

Organizations are matched by the customer's exact address first, then by domain
(a subdomain matches its parent: ``eu.acme.example`` is Acme's). Round-robin
takes its turn from a database counter in the case's own transaction, so several
daemons hand cases out evenly and a rolled-back case does not use up a turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from mailbot.config import Config, ManagerConfig, OrganizationConfig
from mailbot.store.cases import next_number


@dataclass(frozen=True)
class Assignment:
    organization: OrganizationConfig | None
    manager: ManagerConfig | None
    service_level: str
    timezone: str
    timezone_source: str  # organization | default
    reason: str


def find_organization(config: Config, email: str) -> OrganizationConfig | None:
    email = email.lower()
    for organization in config.organizations:
        if email in organization.domains:
            return organization
    domain = email.rpartition("@")[2]
    best: tuple[int, OrganizationConfig] | None = None
    for organization in config.organizations:
        for entry in organization.domains:
            if "@" in entry:
                continue
            if domain == entry or domain.endswith("." + entry):
                if best is None or len(entry) > best[0]:
                    best = (len(entry), organization)
    return best[1] if best else None


def assign(session: Session, config: Config, customer_email: str) -> Assignment:
    return assign_organization(session, config, find_organization(config, customer_email))


def assign_organization(session: Session, config: Config,
                        organization: OrganizationConfig | None) -> Assignment:
    """As ``assign``, for an organization already known (the customer directory names it)."""
    level = (organization.service_level if organization and organization.service_level
             else config.defaults.service_level)
    if organization and organization.timezone:
        zone, zone_source = organization.timezone, "organization"
    else:
        zone, zone_source = config.defaults.timezone, "default"
    if organization and organization.manager:
        manager = config.find_manager(organization.manager)
        reason = f"personal manager of {organization.name}"
    elif config.managers:
        turn = next_number(session, "round_robin")
        manager = config.managers[(turn - 1) % len(config.managers)]
        reason = "round-robin" + (f" ({organization.name} has no personal manager)"
                                  if organization else "")
    else:
        manager, reason = None, "no [[managers]] configured"
    return Assignment(organization, manager, level, zone, zone_source, reason)
