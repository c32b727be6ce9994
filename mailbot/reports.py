"""``mailbot report sla``: are we keeping our promises — per level, organization, manager?

Each deadline of each case is on time (answered by the deadline), late (answered
after it, or unanswered and past it) or pending (unanswered, not due yet). Times
to answer are in working hours of the case's own service level, because that is
what the promise is measured in: a Friday-evening mail answered Monday morning was
answered in minutes of working time, not in 60 hours.

The acknowledgement is judged only for cases that were sent one: a case whose ack was
suppressed (loop protection) or never meant (history imported) made no such promise.
Every case is read once into a :class:`CaseOutcome`; the tables here and the weekly and
distribution views (:mod:`mailbot.report_trends`) are sums over those.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from statistics import median
from typing import Any

from sqlalchemy import select

from mailbot.backfill.record import imported_case_ids
from mailbot.db.models import Case, Outbox
from mailbot.outbox import ACK_KINDS
from mailbot.db.session import Database
from mailbot.schedule.deadlines import Deadlines
from mailbot.views import Table, render_table

GROUPINGS = (("service_level", "service level"), ("organization", "organization"),
             ("manager", "manager"))
TARGETS = (("ack", "acknowledgement"), ("preliminary", "preliminary answer"),
           ("detailed", "detailed answer"))


@dataclass(frozen=True)
class Mark:
    """One deadline of one case: ``on_time``, ``late`` or ``pending``; hours when answered."""

    state: str
    hours: float | None = None


@dataclass(frozen=True)
class CaseOutcome:
    """What the report needs of one case; ``marks`` lacks a target the case was not promised."""

    opened_at: datetime
    keys: dict[str, str]
    marks: dict[str, Mark]


def judge(due: datetime | None, answered: datetime | None, now: datetime,
          hours: float | None) -> Mark:
    if answered is not None:
        return Mark("on_time" if due is None or answered <= due else "late", hours)
    if due is not None and now > due:
        return Mark("late")
    return Mark("pending")


def case_outcomes(db: Database, deadlines: Deadlines, now: datetime,
                  since: datetime | None = None) -> Iterator[CaseOutcome]:
    """Every case opened since ``since``, judged as of ``now``, streamed from the database."""
    with db.session() as session:
        acked = set(session.scalars(select(Outbox.case_id).where(Outbox.kind.in_(ACK_KINDS))
                                    .distinct()))
        # History loaded by `mailbot import` was answered (or not) before mailbot existed.
        imported = imported_case_ids(session)
        query = select(Case)
        if since is not None:
            query = query.where(Case.opened_at >= since)
        for case in session.scalars(query.execution_options(yield_per=1000)):
            if case.id in imported:
                continue
            known = case.service_level in deadlines.levels
            calendar = deadlines.calendar(case.service_level) if known else None

            def working_hours(end: datetime | None) -> float | None:
                if end is None or calendar is None:
                    return None
                return calendar.working_time_between(case.opened_at, end).total_seconds() / 3600

            marks = {
                "preliminary": judge(case.preliminary_due, case.first_response_at, now,
                                     working_hours(case.first_response_at)),
                "detailed": judge(case.detailed_due, case.detailed_at, now,
                                  working_hours(case.detailed_at)),
            }
            if case.acknowledged_at is not None or case.id in acked:
                ack_due = deadlines.acknowledge_due(case.service_level, case.opened_at) \
                    if known else None
                marks["ack"] = judge(ack_due, case.acknowledged_at, now,
                                     working_hours(case.acknowledged_at))
            yield CaseOutcome(case.opened_at,
                              {"service_level": case.service_level,
                               "organization": case.organization or "(none)",
                               "manager": case.manager_email or "(unassigned)"},
                              marks)


@dataclass
class Tally:
    """Counts of one target over some cases, with the hours of those answered."""

    on_time: int = 0
    late: int = 0
    pending: int = 0
    hours: list[float] = field(default_factory=list)

    def add(self, mark: Mark | None) -> None:
        if mark is None:
            return
        setattr(self, mark.state, getattr(self, mark.state) + 1)
        if mark.hours is not None:
            self.hours.append(mark.hours)

    @property
    def on_time_rate(self) -> float | None:
        decided = self.on_time + self.late
        return round(self.on_time / decided, 3) if decided else None

    def as_dict(self) -> dict[str, Any]:
        return {"on_time": self.on_time, "late": self.late, "pending": self.pending,
                "on_time_rate": self.on_time_rate,
                "median_hours": round(median(self.hours), 2) if self.hours else None,
                "p90_hours": round(_p90(self.hours), 2) if self.hours else None}


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def group_rows(outcomes: list[CaseOutcome]) -> dict[str, list[dict[str, Any]]]:
    """Per grouping, one row per key (sorted): case count and a tally of each target."""
    groups: dict[str, dict[str, tuple[list[int], dict[str, Tally]]]] = {
        g: {} for g, _ in GROUPINGS}
    for outcome in outcomes:
        for grouping, key in outcome.keys.items():
            count, tallies = groups[grouping].setdefault(
                key, ([0], {target: Tally() for target, _ in TARGETS}))
            count[0] += 1
            for target, _ in TARGETS:
                tallies[target].add(outcome.marks.get(target))
    return {grouping: [{"name": key, "cases": count[0],
                        **{target: tallies[target].as_dict() for target, _ in TARGETS}}
                       for key, (count, tallies) in sorted(groups[grouping].items())]
            for grouping, _ in GROUPINGS}


def sla_report(db: Database, deadlines: Deadlines, now: datetime,
               since: datetime | None = None, zone: str = "UTC") -> dict[str, Any]:
    """The whole report as plain data (``--json``); weeks start on Monday in ``zone``."""
    from mailbot.report_trends import time_to_answer, weekly_on_time

    outcomes = list(case_outcomes(db, deadlines, now, since))
    return {
        "generated_at": now.astimezone(timezone.utc).isoformat(),
        "since": since.isoformat() if since else None,
        **group_rows(outcomes),
        "weekly": weekly_on_time(outcomes, zone),
        "time_to_answer": time_to_answer(outcomes),
    }


def format_hours(hours: float | None) -> str:
    """Short durations in minutes (acknowledgements), the rest in hours."""
    if hours is None:
        return "-"
    return f"{round(hours * 60)}m" if hours < 1 else f"{hours:.1f}h"


def format_rate(rate: float | None) -> str:
    return f"{rate:.0%}" if rate is not None else "-"


def report_tables(report: dict[str, Any]) -> list[Table]:
    """One table per grouping: a row per key and target (the name only on its first row)."""
    tables = []
    for grouping, title in GROUPINGS:
        rows: list[tuple[str, ...]] = []
        for row in report[grouping]:
            for index, (target, target_title) in enumerate(TARGETS):
                tally = row[target]
                rows.append((row["name"] if index == 0 else "",
                             str(row["cases"]) if index == 0 else "",
                             target_title, str(tally["on_time"]), str(tally["late"]),
                             str(tally["pending"]), format_rate(tally["on_time_rate"]),
                             format_hours(tally["median_hours"]),
                             format_hours(tally["p90_hours"])))
        tables.append(Table((title.upper(), "CASES", "TARGET", "ON TIME", "LATE", "OPEN",
                             "RATE", "MEDIAN", "P90"), rows, empty="no cases",
                            title=f"By {title}", right=frozenset({1, 3, 4, 5, 6, 7, 8})))
    return tables


def report_text(report: dict[str, Any], width: int | None = None) -> str:
    """The report for a person: plain text, or drawn for a terminal ``width`` columns wide."""
    lines = [f"SLA report generated {report['generated_at'][:16].replace('T', ' ')} UTC"
             + (f", cases opened since {report['since'][:10]}" if report["since"] else "")]
    for table in report_tables(report):
        lines += ["", render_table(table, width)]
    lines += ["", "on time/late/open: answered by the deadline / after it or overdue / not due "
                  "yet; rate = on time / (on time + late);",
              "median/p90: working hours of the case's service level from the customer's mail "
              "to the answer;",
              "acknowledgement: only cases that were sent one."]
    return "\n".join(lines)
