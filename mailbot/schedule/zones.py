"""Which time zone does a customer live in? (DESIGN.md, "Overnight follow-ups")

In order: the customer's own setting, their organization's, one inferred from
their mail, the configured default — and the answer says which one it was, so
``cases show`` can tell an admin why a follow-up went out when it did.

Inference reads the UTC offset of the ``Date:`` header (the sender's clock) and
the country-code top-level domain of the address: an IANA zone of that country
that has exactly that offset at that moment wins (``.ua`` + ``+02:00`` in
winter → ``Europe/Kyiv``). Without a country, or when none agrees, the offset
alone gives a fixed-offset zone (``Etc/GMT-3`` for +03:00; such a zone knows
no DST, which is the honest limit of one offset). Zone-to-country data is the
IANA ``zone.tab`` shipped by the ``tzdata`` package, not a table of our own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from importlib.resources import files
from zoneinfo import ZoneInfo, available_timezones


@dataclass(frozen=True)
class ZoneChoice:
    zone: str
    source: str  # customer | organization | inferred | default
    reason: str


@cache
def zones_by_country() -> dict[str, tuple[str, ...]]:
    """ISO 3166 code → IANA zones, in zone.tab's order (the main zone first)."""
    table: dict[str, list[tuple[int, str]]] = {}
    text = files("tzdata").joinpath("zoneinfo", "zone.tab").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        code, _coordinates, zone, *comment = line.split("\t")
        # The zone described as covering "most" of a country is its main one (Kyiv, not
        # Simferopol, for .ua): it goes first when several share the offset.
        rank = 0 if not comment or "most" in comment[0].lower() else 1
        table.setdefault(code.upper(), []).append((rank, zone))
    return {code: tuple(z for _, z in sorted(zones, key=lambda item: item[0]))
            for code, zones in table.items()}


# Country-code domains that are not the country's ISO code.
_TLD_TO_ISO = {"UK": "GB", "EU": ""}


def _country_of(email: str) -> str:
    tld = email.rpartition(".")[2].upper()
    if len(tld) != 2 or not tld.isalpha():
        return ""
    return _TLD_TO_ISO.get(tld, tld)


@cache
def _fixed_offset_zones() -> dict[int, str]:
    """Offset in minutes → a zone that has it all year (for offsets Etc/ cannot express)."""
    found: dict[int, str] = {}
    samples = [datetime(2026, 1, 15, 12), datetime(2026, 7, 15, 12)]
    canonical = {zone for zones in zones_by_country().values() for zone in zones}
    for name in sorted(canonical & available_timezones()):
        zone = ZoneInfo(name)
        offsets = {zone.utcoffset(s) for s in samples}
        if len(offsets) == 1:
            offset = next(iter(offsets))
            if offset is not None:
                found.setdefault(int(offset.total_seconds() // 60), name)
    return found


def fixed_zone(offset: timedelta) -> str | None:
    minutes = int(offset.total_seconds() // 60)
    if minutes % 60 == 0 and -12 * 60 <= minutes <= 14 * 60:
        hours = minutes // 60
        # POSIX sign convention: Etc/GMT-3 is three hours AHEAD of UTC.
        return "Etc/UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"
    return _fixed_offset_zones().get(minutes)


def infer_zone(sent_at: datetime | None, email: str) -> tuple[str, str] | None:
    """(zone, reason) from a Date: header's offset and the address's country, or None."""
    if sent_at is None or sent_at.tzinfo is None:
        return None
    offset = sent_at.utcoffset()
    if offset is None or abs(offset) > timedelta(hours=14):
        return None
    if offset == timedelta(0) and not _country_of(email):
        return None  # "+0000" from a server clock says nothing about the person
    country = _country_of(email)
    for name in zones_by_country().get(country, ()):
        if ZoneInfo(name).utcoffset(sent_at.replace(tzinfo=None)) == offset:
            return name, f"Date: offset {_fmt(offset)} matches {name} (.{country.lower()} domain)"
    zone = fixed_zone(offset)
    if zone is None:
        return None
    return zone, f"Date: offset {_fmt(offset)} (no country zone agrees; fixed offset)"


def _fmt(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def resolve_zone(*, customer: str | None, organization: str | None, sent_at: datetime | None,
                 email: str, default: str) -> ZoneChoice:
    if customer:
        return ZoneChoice(customer, "customer", "the customer's own setting")
    if organization:
        return ZoneChoice(organization, "organization", "the organization's setting")
    inferred = infer_zone(sent_at, email)
    if inferred is not None:
        return ZoneChoice(inferred[0], "inferred", inferred[1])
    return ZoneChoice(default, "default", "nothing better known: [defaults] timezone")
