"""Service-level deadlines of a case, computed in the level's business calendar.

Calendars are built once from the config (holiday tables are loaded lazily by the
``holidays`` package and cached per year inside the calendar).
"""

from __future__ import annotations

from datetime import datetime

from mailbot.config import Config
from mailbot.schedule.calendar import BusinessCalendar, parse_duration


class Deadlines:
    def __init__(self, config: Config) -> None:
        self._levels = {
            name: (
                BusinessCalendar.from_spec(level.calendar, level.timezone, level.holidays,
                                           level.extra_holidays),
                parse_duration(level.preliminary),
                parse_duration(level.detailed),
            )
            for name, level in config.service_levels.items()
        }
        self._acknowledge = {name: parse_duration(level.acknowledge)
                             for name, level in config.service_levels.items()}

    @property
    def levels(self) -> frozenset[str]:
        return frozenset(self._levels)

    def calendar(self, level: str) -> BusinessCalendar:
        return self._levels[level][0]

    def for_new_case(self, level: str, opened_at: datetime) -> tuple[datetime, datetime]:
        """(preliminary_due, detailed_due) for a case opened at ``opened_at``."""
        calendar, preliminary, detailed = self._levels[level]
        return calendar.add(opened_at, preliminary), calendar.add(opened_at, detailed)

    def acknowledge_due(self, level: str, opened_at: datetime) -> datetime:
        """When the acknowledgement was promised: the level's ``acknowledge`` in its calendar."""
        return self._levels[level][0].add(opened_at, self._acknowledge[level])
