"""Follow-up timing in the customer's zone: exact cases and properties over every IANA zone."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.schedule.followup import followup_due, local_instant
from mailbot.schedule.zones import infer_zone, resolve_zone

MORNING = time(8, 30)
GAP = timedelta(hours=6)
ZONES = sorted(z for z in available_timezones() if not z.startswith(("posix/", "right/"))
               and z not in ("Factory", "localtime"))


def weekdays(day: date) -> bool:
    return day.weekday() < 5


def due(local: datetime, at: time = MORNING, gap: timedelta = GAP) -> datetime:
    zone = local.tzinfo
    assert isinstance(zone, ZoneInfo)
    return followup_due(local, zone, at, gap, weekdays).astimezone(zone)


def kyiv(*args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo("Europe/Kyiv"))  # type: ignore[misc]


def test_evening_message_next_morning() -> None:
    # Written Monday 20:00: followed up Tuesday 08:30, in the customer's zone.
    assert due(kyiv(2026, 11, 23, 20, 0)) == kyiv(2026, 11, 24, 8, 30)


def test_early_morning_message_same_morning() -> None:
    # Written at 01:00: 08:30 the same morning is more than six hours later.
    assert due(kyiv(2026, 11, 24, 1, 0)) == kyiv(2026, 11, 24, 8, 30)


def test_message_just_before_local_time_waits_a_day() -> None:
    # Written at 08:00 (or 08:29): not thirty minutes later, but the next working morning.
    assert due(kyiv(2026, 11, 24, 8, 0)) == kyiv(2026, 11, 25, 8, 30)
    assert due(kyiv(2026, 11, 24, 8, 29)) == kyiv(2026, 11, 25, 8, 30)


def test_friday_evening_waits_for_monday() -> None:
    # The weekend is not a working morning for an 8x5 customer.
    assert due(kyiv(2026, 11, 27, 19, 0)) == kyiv(2026, 11, 30, 8, 30)


def test_just_after_local_midnight() -> None:
    # 00:05 on a Tuesday: the same Tuesday morning (more than six hours ahead).
    assert due(kyiv(2026, 11, 24, 0, 5)) == kyiv(2026, 11, 24, 8, 30)


@pytest.mark.parametrize(("zone", "offset"), [("Asia/Kolkata", timedelta(hours=5, minutes=30)),
                                              ("Asia/Kathmandu", timedelta(hours=5, minutes=45))])
def test_half_and_three_quarter_hour_offsets(zone: str, offset: timedelta) -> None:
    # 08:30 local in India and Nepal is 03:00 / 02:45 UTC.
    local = datetime(2026, 11, 23, 21, 0, tzinfo=ZoneInfo(zone))
    result = due(local)
    assert result.utcoffset() == offset
    assert result.replace(tzinfo=None) == datetime(2026, 11, 24, 8, 30)
    assert result.astimezone(timezone.utc).time() == (datetime(2026, 1, 1, 8, 30) - offset).time()


def test_across_the_date_line() -> None:
    # Auckland (UTC+13 in summer) and Honolulu (UTC-10) mornings are days apart in UTC.
    auckland = due(datetime(2026, 11, 23, 22, 0, tzinfo=ZoneInfo("Pacific/Auckland")))
    honolulu = due(datetime(2026, 11, 23, 22, 0, tzinfo=ZoneInfo("Pacific/Honolulu")))
    assert auckland.replace(tzinfo=None) == honolulu.replace(tzinfo=None) == datetime(
        2026, 11, 24, 8, 30)
    assert honolulu - auckland == timedelta(hours=23)


def test_nonexistent_local_time_is_the_end_of_the_gap() -> None:
    # 02:30 on New York's spring-forward day does not exist: the follow-up goes at 03:00 EDT.
    ny = ZoneInfo("America/New_York")
    result = followup_due(datetime(2026, 3, 7, 12, 0, tzinfo=ny), ny, time(2, 30), GAP,
                          lambda d: True)
    assert result == datetime(2026, 3, 8, 7, 0, tzinfo=timezone.utc)  # 03:00 EDT
    assert result.astimezone(ny).replace(tzinfo=None) == datetime(2026, 3, 8, 3, 0)


def test_repeated_local_time_is_the_first_occurrence() -> None:
    # 01:30 happens twice when New York falls back: the follow-up takes the first (EDT).
    ny = ZoneInfo("America/New_York")
    result = followup_due(datetime(2026, 10, 31, 12, 0, tzinfo=ny), ny, time(1, 30), GAP,
                          lambda d: True)
    assert result == datetime(2026, 11, 1, 5, 30, tzinfo=timezone.utc)  # 01:30 EDT


def test_dst_start_in_kyiv_morning() -> None:
    # Kyiv springs forward 03:00→04:00 on 29 Mar 2026; an 08:30 follow-up is still 08:30 local.
    result = due(kyiv(2026, 3, 29, 1, 0), gap=timedelta(hours=1))
    assert result == kyiv(2026, 3, 30, 8, 30)  # Sunday is not a working day
    assert result.utcoffset() == timedelta(hours=3)


@settings(max_examples=300, deadline=None)
@given(zone=st.sampled_from(ZONES),
       moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2037, 12, 31),
                           timezones=st.just(timezone.utc)),
       hour=st.integers(0, 23), minute=st.sampled_from([0, 15, 30, 45]),
       gap_minutes=st.integers(0, 24 * 60))
def test_properties_over_all_zones(zone: str, moment: datetime, hour: int, minute: int,
                                   gap_minutes: int) -> None:
    # For any zone, instant and settings: due is in the future, is local_time (or the end of
    # its DST gap) in that zone on a working day, and no earlier working morning qualifies.
    tz = ZoneInfo(zone)
    at, gap = time(hour, minute), timedelta(minutes=gap_minutes)
    result = followup_due(moment, tz, at, gap, weekdays)
    earliest = moment + gap
    assert result >= earliest and result > moment - timedelta(seconds=1)
    due_day = _due_day(result, tz, at)  # raises unless result is local_time of some day
    assert weekdays(due_day)
    day = due_day - timedelta(days=1)
    while not weekdays(day):
        day -= timedelta(days=1)
    assert local_instant(day, at, tz) < earliest  # the previous working morning was too early


def _due_day(result: datetime, tz: ZoneInfo, at: time) -> date:
    """The local day whose ``at`` the result is (a gap's end can be after that day's midnight)."""
    local = result.astimezone(tz)
    for day in (local.date(), local.date() - timedelta(days=1)):
        if local_instant(day, at, tz) == result:
            return day
    raise AssertionError(f"{result} is not {at} of any day in {tz}")


def test_zone_resolution_order_and_inference() -> None:
    # Customer setting, then organization, then Date: offset + country domain, then default.
    sent = datetime(2026, 11, 23, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    assert resolve_zone(customer="Asia/Tokyo", organization="UTC", sent_at=sent,
                        email="a@b.ua", default="UTC").source == "customer"
    assert resolve_zone(customer=None, organization="Europe/Berlin", sent_at=sent,
                        email="a@b.ua", default="UTC").zone == "Europe/Berlin"
    inferred = resolve_zone(customer=None, organization=None, sent_at=sent, email="a@shop.com.ua",
                            default="UTC")
    assert (inferred.zone, inferred.source) == ("Europe/Kyiv", "inferred")
    summer = datetime(2026, 7, 1, 10, 0, tzinfo=timezone(timedelta(hours=3)))
    assert infer_zone(summer, "a@b.ua") == ("Europe/Kyiv", "Date: offset +03:00 matches "
                                            "Europe/Kyiv (.ua domain)")
    assert infer_zone(datetime(2026, 7, 1, tzinfo=timezone(timedelta(hours=-7))),
                      "a@gmail.com")[0] == "Etc/GMT+7"  # type: ignore[index]
    assert resolve_zone(customer=None, organization=None,
                        sent_at=datetime(2026, 7, 1, tzinfo=timezone.utc), email="a@gmail.com",
                        default="Europe/Kyiv").source == "default"
