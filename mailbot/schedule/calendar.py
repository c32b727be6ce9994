"""Business calendars: when the team is at work, and what "within 1 day" means.

Service levels promise answers in *working* time ("preliminary answer within 1 day" means one
working day of the level's calendar, not 24 hours), so every deadline, pause and SLA report goes
through a :class:`BusinessCalendar`. A calendar is a weekly pattern of local wall-clock windows in
one IANA zone, minus public holidays (from the ``holidays`` package, never hand-written tables,
because they change every year and by decree) and extra dates the admin lists.

Everything here is pure: no clock, no I/O, no global state. Callers pass aware datetimes and get
aware UTC datetimes back, so the results can be stored, compared and re-computed by any daemon.

Working windows are turned into real UTC intervals day by day with ``zoneinfo``. That is what
keeps daylight-saving changes honest: a window that contains a DST change is an hour shorter or
longer in real time, a local opening time that does not exist (inside the spring-forward gap)
means the first instant after the gap, and a repeated local time means its first occurrence
(``fold=0``). Every search is bounded (:data:`HORIZON_DAYS`) so a calendar with no working time
fails with a ``ValueError`` instead of spinning forever.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_pkg

__all__ = ["HORIZON_DAYS", "BusinessCalendar", "Duration", "parse_duration"]

_UTC: Final = timezone.utc
_ZERO: Final = timedelta(0)
_ONE_DAY: Final = timedelta(days=1)

#: How far (in calendar days) any search for the next working day may look before giving up.
#: Three years is far beyond any real run of holidays, and small enough to fail fast.
HORIZON_DAYS: Final = 3 * 366

# Limits that keep every computation inside ``datetime``'s range: a target longer than ten years is
# a typo ("10000d"), not a service level.
_MAX_DAYS: Final = 3660
_MAX_MINUTES: Final = 3660 * 24 * 60
_FIRST_DAY: Final = date(2, 1, 1)
_LAST_DAY: Final = date(9990, 1, 1)

_WEEK_MINUTES: Final = 7 * 24 * 60
_DAY_MINUTES: Final = 24 * 60


# --------------------------------------------------------------------------------------------
# Durations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Duration:
    """An SLA target such as "1d4h": whole working days, then working minutes.

    Days and minutes are kept apart because they are not convertible: a working day is whatever
    the calendar's day holds (9 h on Monday, 7 h on Friday, 24 h for 24x7), so "1d" is "the same
    time on the next working day", while minutes are counted inside working windows.
    """

    days: int = 0
    minutes: int = 0

    def __post_init__(self) -> None:
        for name in ("days", "minutes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"Duration.{name} must be an int, got {value!r}")
            if value < 0:
                raise ValueError(f"Duration.{name} cannot be negative, got {value}")

    def __str__(self) -> str:
        """The canonical form ("1d4h", "1h30m", "0m"), which :func:`parse_duration` reads back."""
        hours, minutes = divmod(self.minutes, 60)
        text = ""
        if self.days:
            text += f"{self.days}d"
        if hours:
            text += f"{hours}h"
        if minutes:
            text += f"{minutes}m"
        return text or "0m"

    @property
    def is_zero(self) -> bool:
        """True for "0m": such a deadline is the start itself (snapped to the next opening)."""
        return self.days == 0 and self.minutes == 0


_DURATION_RE: Final = re.compile(
    r"(?:(?P<d>[0-9]+)d)?\s*(?:(?P<h>[0-9]+)h)?\s*(?:(?P<m>[0-9]+)m)?"
)


def parse_duration(text: str) -> Duration:
    """Read an SLA target from the configuration: "5m", "4h", "1d", "1d4h", "90m", "1h30m".

    ``d`` is working days of the calendar, ``h``/``m`` are working hours/minutes. Units come in
    the order d, h, m, each at most once, lower case (an upper-case ``M`` could mean months).
    Raises ``ValueError`` with a message the config loader can show as is.
    """
    example = "expected a duration like '5m', '4h', '1d', '1d4h' or '90m'"
    if not isinstance(text, str):
        raise ValueError(f"{example}, got {text!r}")
    stripped = text.strip()
    match = _DURATION_RE.fullmatch(stripped)
    if not stripped or match is None or not any(match.group(u) for u in ("d", "h", "m")):
        raise ValueError(f"{example}, got {text!r}")
    days = int(match.group("d") or 0)
    minutes = int(match.group("h") or 0) * 60 + int(match.group("m") or 0)
    if days > _MAX_DAYS or minutes > _MAX_MINUTES:
        raise ValueError(f"duration {text!r} is too long (at most {_MAX_DAYS} days)")
    return Duration(days=days, minutes=minutes)


# --------------------------------------------------------------------------------------------
# Calendar specification ("Mon-Fri 09:00-18:00")
# --------------------------------------------------------------------------------------------

_DAY_ABBR: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAY_NAMES: Final = {
    **{abbr.lower(): i for i, abbr in enumerate(_DAY_ABBR)},
    **{
        name: i
        for i, name in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    },
    "tues": 1,
    "thur": 3,
    "thurs": 3,
}
_24X7: Final = frozenset({"24x7", "24×7", "24/7"})
_RANGE_RE: Final = re.compile(r"([0-9]{1,2}):([0-9]{2})-([0-9]{1,2}):([0-9]{2})")

# A weekly pattern: for each weekday (Mon=0) the windows that *start* on it, as minutes after that
# day's local midnight; the end may exceed 1440 when the window crosses midnight.
_Weekly = tuple[tuple[tuple[int, int], ...], ...]


def _fmt_minutes(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _fmt_window(weekday: int, start: int, end: int) -> str:
    shown_end = end - _DAY_MINUTES if end > _DAY_MINUTES else end
    return f"{_DAY_ABBR[weekday]} {_fmt_minutes(start)}-{_fmt_minutes(shown_end)}"


def _parse_days(token: str, spec: str) -> set[int]:
    names = token.split("-")
    if len(names) > 2 or not all(names):
        raise ValueError(
            f"calendar {spec!r}: {token!r} is not a day or a day range like 'Mon-Fri'"
        )
    found: list[int] = []
    for name in names:
        index = _DAY_NAMES.get(name.lower())
        if index is None:
            if _RANGE_RE.fullmatch(name) or ":" in name:
                raise ValueError(
                    f"calendar {spec!r}: hours {token!r} have no days before them "
                    "(write e.g. 'Mon-Fri 09:00-18:00')"
                )
            raise ValueError(
                f"calendar {spec!r}: unknown day {name!r} (expected one of {', '.join(_DAY_ABBR)})"
            )
        found.append(index)
    if len(found) == 1:
        return {found[0]}
    first, last = found
    # A range wraps around the week: "Sun-Thu" is Sun, Mon, Tue, Wed, Thu.
    return {(first + k) % 7 for k in range((last - first) % 7 + 1)}


def _parse_range(token: str, spec: str) -> tuple[int, int]:
    match = _RANGE_RE.fullmatch(token)
    if match is None:
        raise ValueError(
            f"calendar {spec!r}: {token!r} is not a time range; write HH:MM-HH:MM, e.g. 09:00-18:00"
        )
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise ValueError(
            f"calendar {spec!r}: {token!r} has an impossible time "
            "(hours 00-23, or 24:00 as an end; minutes 00-59)"
        )
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(
            f"calendar {spec!r}: window {token!r} is empty (for a whole day write 00:00-24:00)"
        )
    if end < start:  # crosses midnight: ends on the next day
        end += _DAY_MINUTES
    return start, end


def _parse_calendar(spec: str) -> _Weekly:
    """Turn "Mon-Thu 09:00-18:00, Fri 09:00-16:00" into a weekly pattern, or say what is wrong.

    Items are separated by commas; a comma-separated run of bare days ("Mon,Wed,Fri 10:00-14:00")
    shares the hours of the item that ends it. An item may list several ranges
    ("Mon-Fri 09:00-13:00 14:00-18:00"). Windows may not overlap, including across midnight and
    the end of the week, so every instant belongs to at most one working day.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(
            f"calendar must be '24x7' or like 'Mon-Fri 09:00-18:00', got {spec!r}"
        )
    text = re.sub(r"\s*-\s*", "-", spec.strip())
    per_day: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    pending: set[int] = set()
    for piece in text.split(","):
        tokens = piece.split()
        if not tokens:
            raise ValueError(f"calendar {spec!r}: empty item (a stray comma?)")
        pending |= _parse_days(tokens[0], spec)
        if len(tokens) == 1:
            continue  # bare days: they take the hours of the next item
        for token in tokens[1:]:
            window = _parse_range(token, spec)
            for weekday in pending:
                per_day[weekday].append(window)
        pending = set()
    if pending:
        names = ", ".join(_DAY_ABBR[d] for d in sorted(pending))
        raise ValueError(f"calendar {spec!r}: {names} without hours (e.g. 'Fri 09:00-18:00')")

    # Overlap check on the circle of the week, in wall-clock minutes since Monday 00:00.
    flat = sorted(
        (weekday * _DAY_MINUTES + start, weekday * _DAY_MINUTES + end, weekday, start, end)
        for weekday, windows in enumerate(per_day)
        for start, end in windows
    )
    for i in range(len(flat) if len(flat) > 1 else 0):
        this, after = flat[i], flat[(i + 1) % len(flat)]
        next_start = after[0] + (_WEEK_MINUTES if i + 1 == len(flat) else 0)
        if this[1] > next_start:
            raise ValueError(
                f"calendar {spec!r}: windows {_fmt_window(*this[2:])} and "
                f"{_fmt_window(*after[2:])} overlap"
            )
    return tuple(tuple(sorted(windows)) for windows in per_day)


def _parse_zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"timezone must be an IANA name like 'Europe/Kyiv', got {name!r}")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (expected an IANA name like 'Europe/Kyiv' or 'UTC')"
        ) from None


def _parse_holidays(spec: str | None) -> tuple[str, str | None] | None:
    """Validate "UA" / "US-CA" against the ``holidays`` package; return (country, subdivision)."""
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return None
    if not isinstance(spec, str):
        raise ValueError(f"holidays must be a country code like 'UA' or 'US-CA', got {spec!r}")
    country, _, subdiv = spec.strip().partition("-")
    country = country.strip().upper()
    supported = holidays_pkg.list_supported_countries()
    if country not in supported:
        raise ValueError(
            f"unknown holidays country {country!r} in {spec!r} "
            "(expected an ISO 3166 code the holidays package knows, e.g. 'UA', 'US', 'DE')"
        )
    if not subdiv:
        return country, None
    known = supported[country]
    for candidate in (subdiv.strip(), subdiv.strip().upper()):
        try:
            holidays_pkg.country_holidays(country, subdiv=candidate, years=[])
        except NotImplementedError:
            continue
        return country, candidate
    listed = ", ".join(known[:40]) + (", ..." if len(known) > 40 else "")
    raise ValueError(
        f"unknown subdivision {subdiv!r} of {country} in {spec!r}"
        + (f" (known: {listed})" if known else f" ({country} has no subdivisions)")
    )


def _parse_extra(extra: Sequence[date | str]) -> frozenset[date]:
    if isinstance(extra, (str, bytes)):
        raise ValueError(f"extra_holidays must be a list of dates, got the string {extra!r}")
    dates: set[date] = set()
    for item in extra:
        if isinstance(item, datetime):
            raise ValueError(f"extra_holidays: {item!r} is a datetime, expected a date")
        if isinstance(item, date):
            dates.add(item)
            continue
        try:
            if not isinstance(item, str):
                raise TypeError
            dates.add(date.fromisoformat(item.strip()))
        except (TypeError, ValueError):
            raise ValueError(
                f"extra_holidays: {item!r} is not a date (expected YYYY-MM-DD)"
            ) from None
    return frozenset(dates)


# --------------------------------------------------------------------------------------------
# The calendar
# --------------------------------------------------------------------------------------------


class _Day:
    """One working day's windows as real UTC intervals (those that start on that local date)."""

    __slots__ = ("date", "starts", "ends", "before", "total")

    def __init__(self, day: date, intervals: list[tuple[datetime, datetime]]) -> None:
        self.date = day
        self.starts = tuple(s for s, _ in intervals)
        self.ends = tuple(e for _, e in intervals)
        before: list[timedelta] = []
        total = _ZERO
        for s, e in intervals:
            before.append(total)  # working time of this day before interval i opens
            total += e - s
        self.before = tuple(before)
        self.total = total

    def at_offset(self, offset: timedelta) -> tuple[int, datetime]:
        """The earliest instant with ``offset`` working time since the day's first opening.

        An offset that lands on a boundary between two windows gives the close of the first
        (the earliest instant), and one past the day's total is clamped to the day's close.
        """
        for i, start in enumerate(self.starts):
            if offset <= self.before[i] + (self.ends[i] - start):
                return i, start + (offset - self.before[i])
        return len(self.ends) - 1, self.ends[-1]


def _require_utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"{what} must be an aware datetime (UTC), got naive {value.isoformat()}")
    return value.astimezone(_UTC)


class BusinessCalendar:
    """Working windows in one zone, minus holidays; computes deadlines in working time.

    Build it with :meth:`from_spec`. Instances are immutable and safe to share between threads;
    the per-day and per-year caches only remember results of pure computations.
    """

    __slots__ = (
        "_spec",
        "_weekly",
        "_zone",
        "_is_24x7",
        "_holidays_spec",
        "_country",
        "_extra",
        "_holiday_years",
        "_day",
    )

    def __init__(
        self,
        *,
        spec: str,
        weekly: _Weekly | None,
        zone: ZoneInfo,
        holidays_spec: str | None,
        country: tuple[str, str | None] | None,
        extra: frozenset[date],
    ) -> None:
        """Use :meth:`from_spec`; this takes already validated parts."""
        self._spec = spec
        self._weekly = weekly
        self._zone = zone
        self._is_24x7 = weekly is None
        self._holidays_spec = holidays_spec
        self._country = country
        self._extra = extra
        self._holiday_years: dict[int, frozenset[date]] = {}
        # Deadlines for thousands of cases hit the same few days: remember each day's intervals.
        self._day = lru_cache(maxsize=4096)(self._compute_day)

    # -- construction ---------------------------------------------------------------------

    @classmethod
    def from_spec(
        cls,
        calendar: str,
        timezone: str,
        holidays: str | None = None,
        extra_holidays: Sequence[date | str] = (),
    ) -> BusinessCalendar:
        """Build a calendar from the service-level configuration, or raise ``ValueError``.

        ``calendar`` is "24x7" or items like "Mon-Fri 09:00-18:00"; ``timezone`` an IANA name;
        ``holidays`` "UA" or "US-CA" (country[-subdivision] of the ``holidays`` package);
        ``extra_holidays`` extra non-working dates. For 24x7, holidays are validated but do not
        apply (an extended level is always on).
        """
        zone = _parse_zone(timezone)
        weekly = None if isinstance(calendar, str) and calendar.strip().lower() in _24X7 else (
            _parse_calendar(calendar)
        )
        country = _parse_holidays(holidays)
        extra = _parse_extra(extra_holidays)
        return cls(
            spec=calendar.strip(),
            weekly=weekly,
            zone=zone,
            holidays_spec=holidays.strip() if isinstance(holidays, str) and holidays.strip() else None,
            country=country,
            extra=extra,
        )

    # -- public attributes ----------------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        """The zone the working windows and holidays are reckoned in."""
        return self._zone

    @property
    def is_24x7(self) -> bool:
        """True when every instant is working time (days are 24 h, minutes are wall minutes)."""
        return self._is_24x7

    @property
    def spec(self) -> str:
        """The calendar text it was built from, for messages and reports."""
        return self._spec

    def __repr__(self) -> str:
        return (
            f"BusinessCalendar.from_spec({self._spec!r}, {self._zone.key!r}, "
            f"holidays={self._holidays_spec!r}, "
            f"extra_holidays={[d.isoformat() for d in sorted(self._extra)]!r})"
        )

    def _key(self) -> tuple[Any, ...]:
        return (self._weekly, self._zone.key, self._country, self._extra)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BusinessCalendar):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[Any, ...]:
        # The caches hold a bound method; rebuild from the spec instead (worker processes).
        return (
            BusinessCalendar.from_spec,
            (self._spec, self._zone.key, self._holidays_spec, tuple(sorted(self._extra))),
        )

    # -- public queries -------------------------------------------------------------------

    def is_working_day(self, d: date) -> bool:
        """Whether local date ``d`` has a window starting on it and is not a holiday."""
        if isinstance(d, datetime) or not isinstance(d, date):
            raise TypeError(
                f"is_working_day takes a date, got {type(d).__name__} "
                "(use dt.astimezone(calendar.zone).date())"
            )
        if self._weekly is None:
            return True
        return bool(self._weekly[d.weekday()]) and not self._is_holiday(d)

    def is_open(self, at: datetime) -> bool:
        """Whether ``at`` is inside a working window (windows are half-open: the close is not)."""
        t = _require_utc(at, "at")
        if self._weekly is None:
            return True
        local = self._local_date(t)
        for offset in (-2, -1, 0, 1):
            day = self._day(local + timedelta(days=offset))
            if day is None:
                continue
            for start, end in zip(day.starts, day.ends):
                if start <= t < end:
                    return True
        return False

    def next_opening(self, at: datetime) -> datetime:
        """``at`` itself when inside a window, else the start of the next window (UTC)."""
        t = _require_utc(at, "at")
        if self._weekly is None:
            return t
        located = self._locate(t, None)
        assert located is not None  # without a limit, _locate raises instead
        return located[2]

    def add(self, start: datetime, duration: Duration) -> datetime:
        """The deadline ``duration`` of working time after ``start`` (aware UTC in and out).

        A start outside working hours counts from the next opening. Days come first: each moves
        to the same working-time offset (time worked since that day's first opening) on the next
        working day, clamped to its close when that day is shorter. Then the minutes are counted
        inside working windows. A result that falls exactly on an opening is moved back to the
        preceding close ("by close of business Monday", not "09:00 Tuesday"); no working time
        lies between the two, so both mean the same amount of work. For 24x7, a day is 24 h of
        real time and minutes are real minutes.
        """
        t = _require_utc(start, "start")
        if not isinstance(duration, Duration):
            raise TypeError(f"duration must be a Duration, got {type(duration).__name__}")
        if self._weekly is None:
            try:
                return t + timedelta(days=duration.days, minutes=duration.minutes)
            except OverflowError:
                raise ValueError(f"{t.isoformat()} + {duration} is out of range") from None

        located = self._locate(t, None)
        assert located is not None
        day, i, pos = located
        if duration.days:
            offset = day.before[i] + (pos - day.starts[i])
            for _ in range(duration.days):
                day = self._require_day_from(day.date + _ONE_DAY)
            i, pos = day.at_offset(offset)
        if duration.minutes:
            day, i, pos = self._advance(day, i, pos, timedelta(minutes=duration.minutes))
        if not duration.is_zero and pos == day.starts[i]:
            pos = self._close_before(day, i)
        return pos

    def working_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time in ``[a, b)`` (zero when ``b <= a``): SLA clock pauses and reports."""
        ta = _require_utc(a, "a")
        tb = _require_utc(b, "b")
        if tb <= ta:
            return _ZERO
        if self._weekly is None:
            return tb - ta
        limit = self._local_date(tb) + _ONE_DAY
        located = self._locate(ta, limit)
        if located is None:
            return _ZERO
        day: _Day | None = located[0]
        i = located[1]
        total = _ZERO
        while day is not None:
            for j in range(i, len(day.starts)):
                start = day.starts[j]
                if start >= tb:
                    return total
                total += min(day.ends[j], tb) - max(start, ta)
            i = 0
            day = self._day_from(day.date + _ONE_DAY, limit)
        return total

    # -- internals ------------------------------------------------------------------------

    def _local_date(self, t: datetime) -> date:
        local = t.astimezone(self._zone).date()
        if not _FIRST_DAY <= local <= _LAST_DAY:
            raise ValueError(f"{t.isoformat()} is outside the supported range of dates")
        return local

    def _is_holiday(self, d: date) -> bool:
        year = self._holiday_years.get(d.year)
        if year is None:
            year = self._load_holiday_year(d.year)
        return d in year

    def _load_holiday_year(self, year: int) -> frozenset[date]:
        dates = {d for d in self._extra if d.year == year}
        if self._country is not None:
            country, subdiv = self._country
            table = holidays_pkg.country_holidays(country, subdiv=subdiv, years=year)
            dates.update(d for d in table if d.year == year)
        frozen = frozenset(dates)
        self._holiday_years[year] = frozen
        return frozen

    def _to_utc(self, local: datetime) -> datetime:
        """Resolve a naive local wall time to UTC: repeated → first occurrence, gap → its end."""
        zone = self._zone
        first = local.replace(tzinfo=zone).astimezone(_UTC)  # fold=0
        if first.astimezone(zone).replace(tzinfo=None) == local:
            return first
        # The wall time does not exist (a DST gap): the two folds bracket the transition; find
        # the transition instant, i.e. the first instant after the gap, to the second.
        other = local.replace(tzinfo=zone, fold=1).astimezone(_UTC)
        lo, hi = (first, other) if first < other else (other, first)
        lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
        lo_offset = lo.astimezone(zone).utcoffset()
        while hi_s - lo_s > 1:
            mid = (lo_s + hi_s) // 2
            if datetime.fromtimestamp(mid, _UTC).astimezone(zone).utcoffset() == lo_offset:
                lo_s = mid
            else:
                hi_s = mid
        return datetime.fromtimestamp(hi_s, _UTC)

    def _compute_day(self, d: date) -> _Day | None:
        """The UTC intervals of the windows starting on local date ``d``; None if not working."""
        assert self._weekly is not None
        windows = self._weekly[d.weekday()]
        if not windows or self._is_holiday(d):
            return None
        midnight = datetime(d.year, d.month, d.day)
        intervals = []
        for start_min, end_min in windows:
            start = self._to_utc(midnight + timedelta(minutes=start_min))
            end = self._to_utc(midnight + timedelta(minutes=end_min))
            if end > start:  # a window entirely inside a DST gap has no working time
                intervals.append((start, end))
        return _Day(d, intervals) if intervals else None

    def _day_from(self, d: date, limit: date) -> _Day | None:
        """The first working day on or after ``d`` and not after ``limit``, if any."""
        limit = min(limit, _LAST_DAY)
        while d <= limit:
            day = self._day(d)
            if day is not None:
                return day
            d += _ONE_DAY
        return None

    def _require_day_from(self, d: date) -> _Day:
        """Like :meth:`_day_from` within :data:`HORIZON_DAYS`, but a calendar error otherwise."""
        if d > _LAST_DAY:
            raise ValueError(f"{d.isoformat()} is outside the supported range of dates")
        day = self._day_from(d, d + timedelta(days=HORIZON_DAYS))
        if day is None:
            raise ValueError(
                f"calendar {self._spec!r} in {self._zone.key} has no working time in the "
                f"{HORIZON_DAYS} days from {d.isoformat()} (every day a holiday?)"
            )
        return day

    def _locate(self, t: datetime, limit: date | None) -> tuple[_Day, int, datetime] | None:
        """The window holding ``t`` or, if ``t`` is outside working time, the next one.

        Returns (day, window index, instant), the instant being ``t`` or the next opening.
        Windows of the two previous local dates are checked too, since a window that started
        yesterday evening may still be open. Without ``limit`` the search is bounded by
        :data:`HORIZON_DAYS` and raises; with it, it returns None past ``limit``.
        """
        d = self._local_date(t) - timedelta(days=2)
        while True:
            day = self._require_day_from(d) if limit is None else self._day_from(d, limit)
            if day is None:
                return None
            for i, end in enumerate(day.ends):
                if t < end:
                    start = day.starts[i]
                    return day, i, (t if t >= start else start)
            d = day.date + _ONE_DAY

    def _advance(
        self, day: _Day, i: int, pos: datetime, remaining: timedelta
    ) -> tuple[_Day, int, datetime]:
        """Walk ``remaining`` working time forward from ``pos`` (inside or at the close of window i)."""
        while True:
            end = day.ends[i]
            if pos + remaining <= end:
                return day, i, pos + remaining
            remaining -= end - pos
            i += 1
            if i == len(day.starts):
                day = self._require_day_from(day.date + _ONE_DAY)
                i = 0
            pos = day.starts[i]

    def _close_before(self, day: _Day, i: int) -> datetime:
        """The close of the window before window ``i`` of ``day`` (its opening if none is found)."""
        if i > 0:
            return day.ends[i - 1]
        d = day.date
        for _ in range(HORIZON_DAYS):
            d -= _ONE_DAY
            if d < _FIRST_DAY:
                break
            previous = self._day(d)
            if previous is not None:
                return previous.ends[-1]
        return day.starts[i]
