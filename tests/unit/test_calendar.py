"""Business calendars: working days, working hours, DST, holidays and SLA deadlines."""

from __future__ import annotations

import pickle
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.schedule.calendar import BusinessCalendar, Duration, parse_duration

UTC = timezone.utc
KYIV = ZoneInfo("Europe/Kyiv")
NY = ZoneInfo("America/New_York")


def at(zone: ZoneInfo, y: int, mo: int, day: int, h: int = 0, mi: int = 0) -> datetime:
    """A local wall time (fold=0) as the aware UTC instant the calendar API speaks."""
    return datetime(y, mo, day, h, mi, tzinfo=zone).astimezone(UTC)


def utc(y: int, mo: int, day: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, day, h, mi, tzinfo=UTC)


def d(text: str) -> Duration:
    return parse_duration(text)


STANDARD = BusinessCalendar.from_spec("Mon-Fri 09:00-18:00", "Europe/Kyiv", "UA")
SHORT_FRIDAY = BusinessCalendar.from_spec(
    "Mon-Thu 09:00-18:00, Fri 09:00-16:00", "America/New_York", "US-CA"
)
LUNCH = BusinessCalendar.from_spec("Mon-Fri 09:00-13:00 14:00-18:00", "UTC")
NIGHT = BusinessCalendar.from_spec("Mon-Fri 22:00-06:00", "UTC")
KYIV_EARLY = BusinessCalendar.from_spec("Mon-Sun 01:00-07:00", "Europe/Kyiv")  # holds 03:00-04:00
NY_EARLY = BusinessCalendar.from_spec("Mon-Sun 00:00-06:00", "America/New_York")  # holds 01-03
EXTENDED = BusinessCalendar.from_spec("24x7", "Europe/Kyiv", "UA")

# 2026-01-05 is a Monday; Ukraine (under martial law) has no public days off in 2026.
MON, TUE, WED, THU, FRI, SAT, SUN = range(5, 12)


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days", "minutes", "canonical"),
    [
        ("5m", 0, 5, "5m"),
        ("4h", 0, 240, "4h"),
        ("1d", 1, 0, "1d"),
        ("2d", 2, 0, "2d"),
        ("1d4h", 1, 240, "1d4h"),
        ("90m", 0, 90, "1h30m"),
        ("1h30m", 0, 90, "1h30m"),
        (" 1d 4h ", 1, 240, "1d4h"),
        ("0m", 0, 0, "0m"),
    ],
)
def test_parse_duration_examples(text: str, days: int, minutes: int, canonical: str) -> None:
    # Config strings become (working days, working minutes) and print in canonical form.
    duration = parse_duration(text)
    assert duration == Duration(days=days, minutes=minutes)
    assert str(duration) == canonical


@settings(max_examples=200, deadline=None)
@given(st.builds(Duration, days=st.integers(0, 3000), minutes=st.integers(0, 100_000)))
def test_parse_duration_reads_back_its_canonical_form(duration: Duration) -> None:
    # str(Duration) is a valid config value that parses to the same Duration.
    assert parse_duration(str(duration)) == duration


@pytest.mark.parametrize(
    "text",
    ["", "  ", "5", "m", "1.5h", "-1d", "+1d", "5x", "4h1d", "1d1d", "1 d", "5M", "1D", "abc",
     "99999d", None, 5],
)
def test_parse_duration_rejects_bad_input(text: object) -> None:
    # Anything but <n>d<n>h<n>m is a readable ValueError the config loader can show.
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)  # type: ignore[arg-type]


def test_duration_rejects_negative_parts() -> None:
    # A negative target is a programming error, caught at construction.
    with pytest.raises(ValueError, match="negative"):
        Duration(days=-1)
    with pytest.raises(ValueError, match="negative"):
        Duration(minutes=-5)


# --- weekends, holidays ----------------------------------------------------------------------


def test_weekend_days_are_not_working_days() -> None:
    # Saturday and Sunday have no window in "Mon-Fri", so they are not working days.
    assert STANDARD.is_working_day(date(2026, 1, FRI))
    assert not STANDARD.is_working_day(date(2026, 1, SAT))
    assert not STANDARD.is_working_day(date(2026, 1, SUN))
    assert STANDARD.is_working_day(date(2026, 1, 12))


def test_hours_skip_the_weekend() -> None:
    # Friday 17:00 + 2h = 1h on Friday and 1h on Monday morning.
    assert STANDARD.add(at(KYIV, 2026, 1, FRI, 17, 0), d("2h")) == at(KYIV, 2026, 1, 12, 10, 0)


def test_friday_evening_one_day_lands_on_monday() -> None:
    # A Friday-evening message is due by Monday's close with "1d", not on Tuesday.
    assert STANDARD.add(at(KYIV, 2026, 1, FRI, 20, 0), d("1d")) == at(KYIV, 2026, 1, 12, 18, 0)
    assert STANDARD.add(at(KYIV, 2026, 1, FRI, 18, 0), d("1d")) == at(KYIV, 2026, 1, 12, 18, 0)
    assert STANDARD.add(at(KYIV, 2026, 1, SAT, 11, 0), d("2d")) == at(KYIV, 2026, 1, 13, 18, 0)


def test_ukrainian_public_holidays_are_skipped() -> None:
    # Dates the holidays package lists for UA are not working days, and "1d" jumps over them.
    ua_2021 = holidays.country_holidays("UA", years=2021)
    assert date(2021, 8, 23) in ua_2021  # bridging Monday off
    assert date(2021, 8, 24) in ua_2021  # Independence Day, Tuesday
    for holiday in ua_2021:
        assert not STANDARD.is_working_day(holiday)
    friday = at(KYIV, 2021, 8, 20, 10, 0)
    assert STANDARD.add(friday, d("1d")) == at(KYIV, 2021, 8, 25, 10, 0)
    assert STANDARD.working_time_between(friday, at(KYIV, 2021, 8, 25, 10, 0)) == timedelta(hours=9)


def test_subdivision_holidays_apply() -> None:
    # "US-CA" uses California's list: Cesar Chavez Day 2026-03-31 (a Tuesday) is off.
    assert date(2026, 3, 31) in holidays.country_holidays("US", subdiv="CA", years=2026)
    assert not SHORT_FRIDAY.is_working_day(date(2026, 3, 31))
    assert SHORT_FRIDAY.add(at(NY, 2026, 3, 30, 11, 0), d("1d")) == at(NY, 2026, 4, 1, 11, 0)


def test_extra_holidays_are_skipped() -> None:
    # Dates listed in extra_holidays (strings or dates) are days off on top of the country's.
    plain = BusinessCalendar.from_spec("Mon-Fri 09:00-18:00", "Europe/Kyiv")
    extra = BusinessCalendar.from_spec(
        "Mon-Fri 09:00-18:00", "Europe/Kyiv", extra_holidays=["2026-12-31", date(2027, 1, 1)]
    )
    start = at(KYIV, 2026, 12, 30, 10, 0)
    assert plain.add(start, d("1d")) == at(KYIV, 2026, 12, 31, 10, 0)
    assert extra.add(start, d("1d")) == at(KYIV, 2027, 1, 4, 10, 0)
    assert not extra.is_working_day(date(2026, 12, 31))
    assert not extra.is_open(at(KYIV, 2026, 12, 31, 12, 0))


# --- windows ---------------------------------------------------------------------------------


def test_window_crossing_midnight_belongs_to_the_day_it_starts() -> None:
    # "Mon-Fri 22:00-06:00": Friday's shift runs into Saturday; Monday 03:00 is closed.
    assert NIGHT.is_open(utc(2026, 1, SAT, 3, 0))
    assert not NIGHT.is_working_day(date(2026, 1, SAT))
    assert not NIGHT.is_open(utc(2026, 1, 12, 3, 0))
    assert NIGHT.next_opening(utc(2026, 1, 12, 3, 0)) == utc(2026, 1, 12, 22, 0)
    # 7h of Friday's night shift, then 1h of Monday's.
    assert NIGHT.add(utc(2026, 1, FRI, 23, 0), d("8h")) == utc(2026, 1, 12, 23, 0)
    # Tuesday 02:00 is 4h into Monday's shift; one day later is 4h into Tuesday's shift.
    assert NIGHT.add(utc(2026, 1, TUE, 2, 0), d("1d")) == utc(2026, 1, WED, 2, 0)


def test_holiday_removes_the_window_that_starts_on_it() -> None:
    # A holiday on Tuesday cancels Tuesday night's shift but not Monday's, which ends on Tuesday.
    cal = BusinessCalendar.from_spec("Mon-Fri 22:00-06:00", "UTC", extra_holidays=["2026-01-06"])
    assert cal.is_open(utc(2026, 1, TUE, 2, 0))
    assert not cal.is_open(utc(2026, 1, TUE, 23, 0))
    assert cal.add(utc(2026, 1, TUE, 2, 0), d("1d")) == utc(2026, 1, THU, 2, 0)


def test_other_calendar_shapes() -> None:
    # Day lists and week-wrapping ranges pick exactly the named days.
    mwf = BusinessCalendar.from_spec("Mon,Wed,Fri 10:00-14:00", "UTC")
    assert [mwf.is_working_day(date(2026, 1, x)) for x in range(5, 12)] == [
        True, False, True, False, True, False, False,
    ]
    assert mwf.add(utc(2026, 1, MON, 13, 0), d("2h")) == utc(2026, 1, WED, 11, 0)
    sun_thu = BusinessCalendar.from_spec("Sun-Thu 08:00-17:00", "Asia/Jerusalem")
    assert [sun_thu.is_working_day(date(2026, 1, x)) for x in range(5, 12)] == [
        True, True, True, True, False, False, True,
    ]


def test_shorter_target_day_clamps_to_its_close() -> None:
    # Thursday 17:00 (8h into the day) + 1d lands on Friday's 16:00 close, Friday being 7h long.
    assert SHORT_FRIDAY.add(at(NY, 2026, 1, THU, 17, 0), d("1d")) == at(NY, 2026, 1, FRI, 16, 0)
    assert SHORT_FRIDAY.add(at(NY, 2026, 1, THU, 17, 0), d("1d1h")) == at(NY, 2026, 1, 12, 10, 0)


# --- close of business -----------------------------------------------------------------------


def test_close_of_business_rule() -> None:
    # A deadline on an opening is reported as the previous close: "by end of Monday".
    assert STANDARD.add(at(KYIV, 2026, 1, MON, 9, 0), d("1d")) == at(KYIV, 2026, 1, MON, 18, 0)
    assert STANDARD.add(at(KYIV, 2026, 1, MON, 9, 0), d("9h")) == at(KYIV, 2026, 1, MON, 18, 0)
    assert STANDARD.add(at(KYIV, 2026, 1, MON, 10, 0), d("8h")) == at(KYIV, 2026, 1, MON, 18, 0)
    assert STANDARD.add(at(KYIV, 2026, 1, MON, 10, 0), d("1d")) == at(KYIV, 2026, 1, TUE, 10, 0)
    # The same within a day with a lunch break: 13:00, not 14:00.
    assert LUNCH.add(utc(2026, 1, MON, 9, 0), d("4h")) == utc(2026, 1, MON, 13, 0)
    assert LUNCH.add(utc(2026, 1, MON, 14, 0), d("1d")) == utc(2026, 1, TUE, 13, 0)
    assert LUNCH.add(utc(2026, 1, MON, 12, 0), d("2h")) == utc(2026, 1, MON, 15, 0)


def test_zero_duration_is_the_next_opening() -> None:
    # "0m" is due when work can start: the start itself, or the next opening.
    assert STANDARD.add(at(KYIV, 2026, 1, MON, 11, 0), d("0m")) == at(KYIV, 2026, 1, MON, 11, 0)
    assert STANDARD.add(at(KYIV, 2026, 1, SAT, 11, 0), d("0m")) == at(KYIV, 2026, 1, 12, 9, 0)


def test_hours_spanning_several_days() -> None:
    # 20 working hours from Monday 10:00 = 8h Mon + 9h Tue + 3h Wed.
    assert STANDARD.add(at(KYIV, 2026, 1, MON, 10, 0), d("20h")) == at(KYIV, 2026, 1, WED, 12, 0)
    # 30h from Thursday 15:00 crosses a weekend and ends exactly at Tuesday's close.
    assert STANDARD.add(at(KYIV, 2026, 1, THU, 15, 0), d("30h")) == at(KYIV, 2026, 1, 13, 18, 0)
    # Days first, then hours: Friday 20:00 -> Monday 09:00 -> Tuesday 09:00 -> Tuesday 11:00.
    assert STANDARD.add(at(KYIV, 2026, 1, FRI, 20, 0), d("1d2h")) == at(KYIV, 2026, 1, 13, 11, 0)


def test_working_time_between() -> None:
    # Only time inside windows counts; an empty or reversed span is zero.
    assert STANDARD.working_time_between(
        at(KYIV, 2026, 1, FRI, 17, 0), at(KYIV, 2026, 1, 12, 10, 0)
    ) == timedelta(hours=2)
    assert STANDARD.working_time_between(
        at(KYIV, 2026, 1, MON, 0, 0), at(KYIV, 2026, 1, 12, 0, 0)
    ) == timedelta(hours=45)
    later, earlier = at(KYIV, 2026, 1, TUE, 12, 0), at(KYIV, 2026, 1, MON, 12, 0)
    assert STANDARD.working_time_between(later, earlier) == timedelta(0)
    assert STANDARD.working_time_between(later, later) == timedelta(0)
    assert NIGHT.working_time_between(utc(2026, 1, SAT, 0, 0), utc(2026, 1, 12, 23, 0)) == (
        timedelta(hours=7)
    )


@pytest.mark.parametrize("minutes", [1, 59, 60, 61, 539, 540, 541, 1080, 5000])
@pytest.mark.parametrize("hour", [0, 9, 12, 18, 23])
def test_working_time_between_inverts_add_for_minutes(minutes: int, hour: int) -> None:
    # Measuring from a start to add(start, X minutes) gives back exactly X minutes.
    for day in (FRI, SAT, MON):
        start = at(KYIV, 2026, 1, day, hour, 7)
        deadline = STANDARD.add(start, Duration(minutes=minutes))
        assert STANDARD.working_time_between(start, deadline) == timedelta(minutes=minutes)


def test_next_opening_and_is_open() -> None:
    # Inside a window the instant is its own opening; the close itself is already closed.
    inside = at(KYIV, 2026, 1, MON, 12, 0)
    assert STANDARD.is_open(inside) and STANDARD.next_opening(inside) == inside
    close = at(KYIV, 2026, 1, FRI, 18, 0)
    assert not STANDARD.is_open(close)
    assert STANDARD.next_opening(close) == at(KYIV, 2026, 1, 12, 9, 0)
    assert STANDARD.next_opening(close).tzinfo is UTC


# --- daylight saving time --------------------------------------------------------------------


def test_dst_spring_forward_kyiv() -> None:
    # On 2026-03-29 Kyiv skips 03:00-04:00: the 01:00-07:00 window holds 5 real hours.
    sunday = at(KYIV, 2026, 3, 29, 1, 0)
    assert KYIV_EARLY.working_time_between(sunday, at(KYIV, 2026, 3, 29, 7, 0)) == timedelta(hours=5)
    assert KYIV_EARLY.add(sunday, d("5h")) == at(KYIV, 2026, 3, 29, 7, 0)
    assert KYIV_EARLY.add(sunday, d("6h")) == at(KYIV, 2026, 3, 30, 2, 0)
    assert KYIV_EARLY.add(at(KYIV, 2026, 3, 29, 2, 0), d("2h")) == at(KYIV, 2026, 3, 29, 5, 0)


def test_dst_fall_back_kyiv() -> None:
    # On 2026-10-25 Kyiv repeats 03:00-04:00: the 01:00-07:00 window holds 7 real hours.
    sunday = at(KYIV, 2026, 10, 25, 1, 0)
    assert KYIV_EARLY.working_time_between(sunday, at(KYIV, 2026, 10, 25, 7, 0)) == timedelta(hours=7)
    assert KYIV_EARLY.add(sunday, d("6h")) == at(KYIV, 2026, 10, 25, 6, 0)
    # 02:00 EEST + 2h is the *second* 03:00 (EET), 01:00 UTC.
    assert KYIV_EARLY.add(at(KYIV, 2026, 10, 25, 2, 0), d("2h")) == utc(2026, 10, 25, 1, 0)


def test_dst_spring_forward_new_york() -> None:
    # On 2026-03-08 New York skips 02:00-03:00: 00:00 + 3h of real time is 04:00 EDT.
    sunday = at(NY, 2026, 3, 8, 0, 0)
    assert NY_EARLY.add(sunday, d("3h")) == at(NY, 2026, 3, 8, 4, 0)
    assert NY_EARLY.working_time_between(sunday, at(NY, 2026, 3, 8, 6, 0)) == timedelta(hours=5)
    # Saturday 05:30 is 5h30m into its day; Sunday holds only 5h, so "1d" clamps to its close.
    assert NY_EARLY.add(at(NY, 2026, 3, 7, 5, 30), d("1d")) == at(NY, 2026, 3, 8, 6, 0)


def test_dst_fall_back_new_york() -> None:
    # On 2026-11-01 New York repeats 01:00-02:00: 00:00 + 2h is the second 01:00 (EST).
    sunday = at(NY, 2026, 11, 1, 0, 0)
    assert NY_EARLY.add(sunday, d("2h")) == utc(2026, 11, 1, 6, 0)
    assert NY_EARLY.add(sunday, d("3h")) == at(NY, 2026, 11, 1, 2, 0)
    assert NY_EARLY.working_time_between(sunday, at(NY, 2026, 11, 1, 6, 0)) == timedelta(hours=7)


def test_dst_keeps_office_hours_in_local_time() -> None:
    # Across the spring change a 09:00-18:00 day is still 09:00 local, so "1d" keeps the wall time.
    start = at(NY, 2026, 3, 6, 10, 0)
    assert SHORT_FRIDAY.add(start, d("1d")) == at(NY, 2026, 3, 9, 10, 0)
    assert SHORT_FRIDAY.working_time_between(start, at(NY, 2026, 3, 9, 10, 0)) == timedelta(hours=7)


def test_nonexistent_and_repeated_opening_times() -> None:
    # An opening inside the gap is the first instant after it; a repeated one is its first pass.
    kyiv = BusinessCalendar.from_spec("Sun 03:30-10:00", "Europe/Kyiv")
    assert kyiv.next_opening(at(KYIV, 2026, 3, 28, 12, 0)) == utc(2026, 3, 29, 1, 0)  # 04:00 EEST
    ny = BusinessCalendar.from_spec("Sun 02:30-05:00", "America/New_York")
    assert ny.next_opening(at(NY, 2026, 3, 7, 12, 0)) == utc(2026, 3, 8, 7, 0)  # 03:00 EDT
    ny_fall = BusinessCalendar.from_spec("Sun 01:30-05:00", "America/New_York")
    opening = ny_fall.next_opening(at(NY, 2026, 10, 31, 12, 0))
    assert opening == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, the first 01:30
    assert ny_fall.working_time_between(opening, utc(2026, 11, 2)) == timedelta(hours=4, minutes=30)


# --- 24x7 ------------------------------------------------------------------------------------


def test_24x7_counts_wall_time() -> None:
    # For 24x7 a day is 24 real hours and hours are real hours, holidays and DST included.
    start = at(KYIV, 2026, 3, 28, 12, 0)  # the day before spring-forward
    assert EXTENDED.is_24x7 and not STANDARD.is_24x7
    assert EXTENDED.add(start, d("1d")) == start + timedelta(hours=24)
    assert EXTENDED.add(start, d("2d4h")) == start + timedelta(hours=52)
    assert EXTENDED.add(start, d("5m")) == start + timedelta(minutes=5)
    assert EXTENDED.working_time_between(start, start + timedelta(days=3)) == timedelta(days=3)
    assert EXTENDED.is_open(start) and EXTENDED.next_opening(start) == start
    assert EXTENDED.is_working_day(date(2021, 8, 24))
    assert EXTENDED.zone == KYIV


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Mon-Fri 9-18", "UTC"), "HH:MM-HH:MM"),
        (("Foo 09:00-18:00", "UTC"), "unknown day 'Foo'"),
        (("Mon-Fri 09:00-18:00", "Europe/Atlantis"), "unknown time zone 'Europe/Atlantis'"),
        (("Mon-Fri 09:00-18:00", "UTC", "XX"), "unknown holidays country 'XX'"),
        (("Mon-Fri 09:00-18:00", "UTC", "US-ZZ"), "unknown subdivision 'ZZ'"),
        (("", "UTC"), "24x7"),
        (("Mon-Fri", "UTC"), "without hours"),
        (("09:00-18:00", "UTC"), "no days"),
        (("Mon-Fri 09:00-09:00", "UTC"), "empty"),
        (("Mon 25:00-26:00", "UTC"), "impossible time"),
        (("Mon-Fri 09:00-18:00, Fri 17:00-19:00", "UTC"), "overlap"),
        (("Sun 20:00-10:00, Mon 09:00-12:00", "UTC"), "overlap"),
        (("Mon-Fri 09:00-18:00", "UTC", None, ["2026-13-01"]), "YYYY-MM-DD"),
    ],
)
def test_bad_specs_raise_readable_errors(args: tuple, message: str) -> None:
    # Every bad service-level setting is a ValueError that names what is wrong.
    with pytest.raises(ValueError, match=message):
        BusinessCalendar.from_spec(*args)


def test_naive_datetimes_are_rejected() -> None:
    # A naive datetime has no instant; every public method refuses it.
    naive = datetime(2026, 1, 5, 10, 0)
    with pytest.raises(ValueError, match="aware"):
        STANDARD.add(naive, d("1h"))
    with pytest.raises(ValueError, match="aware"):
        STANDARD.working_time_between(naive, utc(2026, 1, 6))
    with pytest.raises(ValueError, match="aware"):
        STANDARD.next_opening(naive)
    with pytest.raises(ValueError, match="aware"):
        EXTENDED.is_open(naive)


def test_calendar_without_working_time_fails_instead_of_looping() -> None:
    # When every working day is a holiday for years, add() raises instead of searching forever.
    mondays = [date(2026, 1, 5) + timedelta(weeks=k) for k in range(4 * 53)]
    cal = BusinessCalendar.from_spec("Mon 09:00-10:00", "UTC", extra_holidays=mondays)
    with pytest.raises(ValueError, match="no working time"):
        cal.add(utc(2026, 1, 1), d("1m"))
    assert cal.working_time_between(utc(2026, 1, 1), utc(2027, 1, 1)) == timedelta(0)


def test_calendar_is_comparable_and_picklable() -> None:
    # Calendars built from the same settings are equal and survive pickling (worker processes).
    again = BusinessCalendar.from_spec("Mon-Fri 09:00-18:00", "Europe/Kyiv", "UA")
    assert again == STANDARD and hash(again) == hash(STANDARD)
    copy = pickle.loads(pickle.dumps(STANDARD))
    assert copy == STANDARD
    assert copy.add(at(KYIV, 2026, 1, FRI, 20, 0), d("1d")) == at(KYIV, 2026, 1, 12, 18, 0)


# --- properties ------------------------------------------------------------------------------

CALENDARS = [
    STANDARD,
    SHORT_FRIDAY,
    LUNCH,
    BusinessCalendar.from_spec("Mon-Fri 22:00-06:00", "Europe/Kyiv", "UA"),
    KYIV_EARLY,
    BusinessCalendar.from_spec("Sat,Sun 00:00-03:00, Wed 02:30-02:45", "America/New_York"),
    BusinessCalendar.from_spec("Sun-Thu 08:00-17:00", "Asia/Jerusalem", "IL"),
    EXTENDED,
]
TRANSITIONS = [utc(2026, 3, 29, 1), utc(2026, 10, 25, 1), utc(2026, 3, 8, 7), utc(2026, 11, 1, 6)]

calendars = st.sampled_from(CALENDARS)
starts = st.one_of(
    st.datetimes(
        min_value=datetime(2019, 1, 1), max_value=datetime(2031, 1, 1), timezones=st.just(UTC)
    ),
    st.builds(
        lambda t, s: t + timedelta(seconds=s),
        st.sampled_from(TRANSITIONS),
        st.integers(-4 * 86400, 4 * 86400),
    ),
)
durations = st.builds(Duration, days=st.integers(0, 5), minutes=st.integers(0, 3000))
PROPERTY = settings(max_examples=200, deadline=None)
TICK = timedelta(microseconds=1)


@PROPERTY
@given(calendars, starts, durations)
def test_deadline_is_after_start_and_in_working_time(
    cal: BusinessCalendar, start: datetime, duration: Duration
) -> None:
    # A deadline is never before its start and lies inside a window or at a window's close.
    due = cal.add(start, duration)
    assert due.tzinfo is UTC
    assert due >= start
    assert cal.is_open(due) or cal.is_open(due - TICK)


@PROPERTY
@given(calendars, starts, st.integers(0, 5000))
def test_working_time_between_inverts_add(cal: BusinessCalendar, start: datetime, minutes: int) -> None:
    # For minute durations, the working time from start to the deadline is exactly the duration.
    due = cal.add(start, Duration(minutes=minutes))
    assert cal.working_time_between(start, due) == timedelta(minutes=minutes)


@PROPERTY
@given(calendars, starts, st.integers(0, 8 * 86400 * 10**6), durations)
def test_later_start_never_gives_an_earlier_deadline(
    cal: BusinessCalendar, start: datetime, delay_us: int, duration: Duration
) -> None:
    # add() is monotonic in the start: a later message is never due earlier.
    later = start + timedelta(microseconds=delay_us)
    assert cal.add(later, duration) >= cal.add(start, duration)


@PROPERTY
@given(calendars, starts, st.integers(0, 5 * 86400), st.integers(0, 5 * 86400))
def test_working_time_is_additive(
    cal: BusinessCalendar, a: datetime, first: int, second: int
) -> None:
    # Pausing the SLA clock at any point splits working time without losing or adding any.
    b = a + timedelta(seconds=first)
    c = b + timedelta(seconds=second)
    assert cal.working_time_between(a, c) == (
        cal.working_time_between(a, b) + cal.working_time_between(b, c)
    )


@PROPERTY
@given(calendars, starts)
def test_next_opening_is_the_first_working_instant(cal: BusinessCalendar, at_: datetime) -> None:
    # next_opening is open, not before the instant, with no working time in between.
    opening = cal.next_opening(at_)
    assert opening >= at_
    assert cal.is_open(opening)
    assert cal.is_open(at_) == (opening == at_)
    assert cal.working_time_between(at_, opening) == timedelta(0)
