"""When the overnight follow-up reaches the customer: the start of *their* next working morning.

Precisely (DESIGN.md): ``local_time`` on the earliest working day — judged in the
customer's own zone — that is at least ``min_gap`` after the customer's message.
A message at 08:00 local is followed up the next working morning, not half an
hour later; one at 01:00 local the same morning.

Local times are made with ``zoneinfo``: a ``local_time`` that does not exist that
day (spring forward) becomes the first instant after the gap; one that happens
twice (fall back) is the first of the two.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

HORIZON_DAYS = 3 * 366


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """``at`` on ``day`` in ``zone`` as a UTC instant; gaps resolve to their end."""
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=zone, fold=0)
    utc = first.astimezone(timezone.utc)
    if utc.astimezone(zone).replace(tzinfo=None) == wall:
        return utc  # exists (for a repeated time, fold=0 is the first occurrence)
    # Inside a gap: the first instant whose wall clock is past ``wall`` is the gap's end.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
    high = utc
    if low > high:
        low, high = high, low
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0) if high.microsecond else high


def followup_due(message_at: datetime, zone: ZoneInfo, at: time, min_gap: timedelta,
                 is_working_day: Callable[[date], bool]) -> datetime:
    """The follow-up's due instant (UTC) for a customer message at ``message_at``."""
    if message_at.tzinfo is None:
        raise ValueError("message_at must be timezone-aware")
    earliest = message_at.astimezone(timezone.utc) + min_gap
    day = earliest.astimezone(zone).date() - timedelta(days=1)  # a gap may move the date
    for _ in range(HORIZON_DAYS):
        if is_working_day(day):
            candidate = local_instant(day, at, zone)
            if candidate >= earliest:
                return candidate
        day += timedelta(days=1)
    raise ValueError(f"no working day within {HORIZON_DAYS} days of {message_at.isoformat()}")
