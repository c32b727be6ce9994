"""``mailbot report sla``: are we keeping our promises — per level, organization, manager?

Each deadline of each case is on time (answered by the deadline), late (answered
after it, or unanswered and past it) or pending (unanswered, not due yet). Times
to answer are in working hours of the case's own service level, because that is
what the promise is measured in: a Friday-evening mail answered Monday morning was
answered in minutes of working time, not in 60 hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import Any

from sqlalchemy import select

from mailbot.db.models import Case
from mailbot.db.session import Database
from mailbot.schedule.deadlines import Deadlines

GROUPINGS = (("service_level", "service level"), ("organization", "organization"),
             ("manager", "manager"))


@dataclass
class _Target:
    on_time: int = 0
    late: int = 0
    pending: int = 0
    hours: list[float] = field(default_factory=list)

    def add(self, due: datetime | None, answered: datetime | None, now: datetime,
            hours: float | None) -> None:
        if answered is not None:
            if due is None or answered <= due:
                self.on_time += 1
            else:
                self.late += 1
            if hours is not None:
                self.hours.append(hours)
        elif due is not None and now > due:
            self.late += 1
        else:
            self.pending += 1

    def as_dict(self) -> dict[str, Any]:
        decided = self.on_time + self.late
        return {"on_time": self.on_time, "late": self.late, "pending": self.pending,
                "on_time_rate": round(self.on_time / decided, 3) if decided else None,
                "median_hours": round(median(self.hours), 2) if self.hours else None,
                "p90_hours": round(_p90(self.hours), 2) if self.hours else None}


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def sla_report(db: Database, deadlines: Deadlines, now: datetime,
               since: datetime | None = None) -> dict[str, Any]:
    groups: dict[str, dict[str, tuple[list[int], _Target, _Target]]] = {g: {} for g, _ in GROUPINGS}
    with db.session() as session:
        query = select(Case)
        if since is not None:
            query = query.where(Case.opened_at >= since)
        for case in session.scalars(query.execution_options(yield_per=1000)):
            calendar = deadlines.calendar(case.service_level) \
                if case.service_level in deadlines.levels else None

            def working_hours(end: datetime | None) -> float | None:
                if end is None or calendar is None:
                    return None
                return calendar.working_time_between(case.opened_at, end).total_seconds() / 3600

            keys = {"service_level": case.service_level,
                    "organization": case.organization or "(none)",
                    "manager": case.manager_email or "(unassigned)"}
            for grouping, key in keys.items():
                count, preliminary, detailed = groups[grouping].setdefault(
                    key, ([0], _Target(), _Target()))
                count[0] += 1
                preliminary.add(case.preliminary_due, case.first_response_at, now,
                                working_hours(case.first_response_at))
                detailed.add(case.detailed_due, case.detailed_at, now,
                             working_hours(case.detailed_at))
    return {
        "generated_at": now.isoformat(),
        "since": since.isoformat() if since else None,
        **{grouping: [{"name": key, "cases": count[0], "preliminary": p.as_dict(),
                       "detailed": d.as_dict()}
                      for key, (count, p, d) in sorted(groups[grouping].items())]
           for grouping, _ in GROUPINGS},
    }


def _cell(target: dict[str, Any]) -> str:
    rate = f"{target['on_time_rate']:.0%}" if target["on_time_rate"] is not None else "-"
    median_h = f"{target['median_hours']:.1f}h" if target["median_hours"] is not None else "-"
    p90_h = f"{target['p90_hours']:.1f}h" if target["p90_hours"] is not None else "-"
    return (f"{target['on_time']:>3} ok {target['late']:>3} late {target['pending']:>3} open "
            f"{rate:>4}  med {median_h:>6} p90 {p90_h:>6}")


def report_text(report: dict[str, Any]) -> str:
    lines = [f"SLA report generated {report['generated_at'][:16].replace('T', ' ')} UTC"
             + (f", cases opened since {report['since'][:10]}" if report["since"] else "")]
    for grouping, title in GROUPINGS:
        rows = report[grouping]
        lines += ["", f"By {title}:"]
        if not rows:
            lines.append("  no cases")
            continue
        width = max(len(str(r["name"])) for r in rows)
        lines.append(f"  {'':<{width}}  cases  {'preliminary answer':<48}  detailed answer")
        for row in rows:
            lines.append(f"  {row['name']:<{width}}  {row['cases']:>5}  "
                         f"{_cell(row['preliminary']):<48}  {_cell(row['detailed'])}")
    lines += ["", "ok/late/open: answered by the deadline / after it or overdue / not due yet;",
              "med/p90: working hours from the customer's mail to the answer."]
    return "\n".join(lines)
