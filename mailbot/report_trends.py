"""The SLA report over time and spread: on-time rate per week, time-to-answer histogram.

Tables answer "how did each manager do"; these answer "are we getting better" and "how
long do customers usually wait". Weeks are counted by the day a case was opened in the
team's zone (the working-hours zone of the default service level unless told otherwise),
so a Monday-morning case in Kyiv is not filed under the previous week because it was
still Sunday in UTC. Both are pure functions over :class:`mailbot.reports.CaseOutcome`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mailbot.reports import TARGETS, CaseOutcome, Tally

# Upper edges of the histogram bins in working hours; doubling widths keep a same-hour answer
# and a three-day one on one readable axis. The last bin is open-ended.
BIN_EDGES: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64)
ANSWER_TARGETS = ("preliminary", "detailed")


def week_of(at: datetime, zone: ZoneInfo) -> date:
    """The Monday (in ``zone``) of the week that contains ``at``."""
    local = at.astimezone(zone).date()
    return local - timedelta(days=local.weekday())


def weekly_on_time(outcomes: Iterable[CaseOutcome], zone: str) -> dict[str, Any]:
    """Per week, oldest first and without gaps: each target's on time / late / pending counts.

    A week in which no deadline of a target was decided has ``on_time_rate`` None for it (the
    chart leaves a gap), not 0 %, which would read as a failure.
    """
    tz = ZoneInfo(zone)
    weeks: dict[date, tuple[list[int], dict[str, Tally]]] = {}
    for outcome in outcomes:
        count, tallies = weeks.setdefault(week_of(outcome.opened_at, tz),
                                          ([0], {target: Tally() for target, _ in TARGETS}))
        count[0] += 1
        for target, _ in TARGETS:
            tallies[target].add(outcome.marks.get(target))
    rows = []
    if weeks:
        monday, last = min(weeks), max(weeks)
        while monday <= last:
            count, tallies = weeks.get(monday, ([0], {target: Tally() for target, _ in TARGETS}))
            rows.append({"week": monday.isoformat(), "cases": count[0],
                         **{target: {"on_time": t.on_time, "late": t.late,
                                     "pending": t.pending, "on_time_rate": t.on_time_rate}
                            for target, t in tallies.items()}})
            monday += timedelta(days=7)
    return {"zone": zone, "weeks": rows}


def bin_label(low: float, high: float | None) -> str:
    if high is None:
        return f"{low:g}h+"
    return f"<{high:g}h" if low == 0 else f"{low:g}–{high:g}h"


def time_to_answer(outcomes: Iterable[CaseOutcome]) -> dict[str, Any]:
    """How many answers took how long, in working hours, for the preliminary and detailed answer.

    Bins are ``[low, high)``; an answer of exactly 1 h is in "1–2h". Only answered deadlines
    count; cases of a service level no longer configured have no hours and are left out.
    """
    lows = (0.0, *BIN_EDGES)
    highs: tuple[float | None, ...] = (*BIN_EDGES, None)
    counts = {target: [0] * len(lows) for target in ANSWER_TARGETS}
    for outcome in outcomes:
        for target in ANSWER_TARGETS:
            mark = outcome.marks.get(target)
            if mark is None or mark.hours is None:
                continue
            index = next((i for i, high in enumerate(highs)
                          if high is None or mark.hours < high), len(lows) - 1)
            counts[target][index] += 1
    return {
        "unit": "working hours",
        "bins": [{"label": bin_label(low, high), "from": low, "to": high,
                  **{target: counts[target][i] for target in ANSWER_TARGETS}}
                 for i, (low, high) in enumerate(zip(lows, highs))],
        "answered": {target: sum(counts[target]) for target in ANSWER_TARGETS},
    }
