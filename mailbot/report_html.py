"""``mailbot report sla --html FILE``: the SLA report as one self-contained HTML page.

The page must open from a mail attachment or a USB stick on a machine with no network, so
it has no script and loads nothing: CSS is inline and the charts are SVG whose geometry is
computed here. A charting library was not worth it: the Python ones that emit SVG either
pull their interactive parts from a CDN or need a plotting stack many times mailbot's size,
and the two charts are a handful of lines and rectangles. Every string that reaches the
page (organization and manager names are customer data) goes through the autoescaping
Jinja2 template ``report_templates/sla.html.j2``; nothing is marked safe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from mailbot.errors import MailbotError
from mailbot.reports import GROUPINGS, TARGETS, format_hours, format_rate
from mailbot.report_trends import ANSWER_TARGETS

COLOURS = {"ack": "#6b7280", "preliminary": "#2563eb", "detailed": "#d97706"}
TITLES = dict(TARGETS)
WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 48
MAX_X_LABELS = 16


@dataclass(frozen=True)
class Mark:
    """A drawn thing with the tooltip a reader sees on hover (SVG ``<title>``, no script)."""

    x: float
    y: float
    title: str
    series: str
    width: float = 0
    height: float = 0


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str


@dataclass
class Chart:
    """Everything the template needs to draw one chart, in SVG user units."""

    kind: str
    title: str
    note: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    plot_width: int = WIDTH - LEFT - RIGHT
    plot_height: int = HEIGHT - TOP - BOTTOM
    y_ticks: list[Label] = field(default_factory=list)
    x_labels: list[Label] = field(default_factory=list)
    lines: list[tuple[str, str]] = field(default_factory=list)  # (series, SVG path data)
    points: list[Mark] = field(default_factory=list)
    bars: list[Mark] = field(default_factory=list)
    legend: list[tuple[str, str, str]] = field(default_factory=list)  # (series, colour, title)
    empty: bool = False

    @property
    def bottom(self) -> int:
        return self.top + self.plot_height


def _short_week(iso: str) -> str:
    return date.fromisoformat(iso).strftime("%d %b %Y").lstrip("0")


def weekly_chart(weekly: dict[str, Any]) -> Chart:
    """On-time rate per week: a line per target, a point per week with decided deadlines."""
    chart = Chart("line", "On-time rate per week",
                  f"Weeks start on Monday in {weekly['zone']} and hold the cases opened in "
                  "them; rate = on time / (on time + late), pending deadlines left out.")
    weeks = weekly["weeks"]
    chart.legend = [(t, COLOURS[t], TITLES[t]) for t, _ in TARGETS]
    chart.y_ticks = [Label(chart.left - 6, chart.top + (1 - share) * chart.plot_height,
                           f"{share:.0%}") for share in (0, 0.25, 0.5, 0.75, 1)]
    if not weeks:
        chart.empty = True
        return chart
    band = chart.plot_width / len(weeks)
    step = math.ceil(len(weeks) / MAX_X_LABELS)
    for index, week in enumerate(weeks):
        if index % step == 0:
            chart.x_labels.append(Label(chart.left + (index + 0.5) * band, chart.bottom + 16,
                                        _short_week(week["week"])))
    for series, (target, _) in enumerate(TARGETS):
        # Targets with equal rates would hide each other; a small sideways step keeps all three.
        nudge = (series - 1) * 5
        path: list[str] = []
        pen_down = False
        for index, week in enumerate(weeks):
            tally = week[target]
            rate = tally["on_time_rate"]
            if rate is None:
                pen_down = False
                continue
            x = chart.left + (index + 0.5) * band + nudge
            y = chart.top + (1 - rate) * chart.plot_height
            path.append(f"{'L' if pen_down else 'M'}{x:.1f},{y:.1f}")
            pen_down = True
            chart.points.append(Mark(x, y, f"week of {_short_week(week['week'])}: "
                                           f"{TITLES[target]} {tally['on_time']} of "
                                           f"{tally['on_time'] + tally['late']} on time "
                                           f"({format_rate(rate)})", target))
        if path:
            chart.lines.append((target, " ".join(path)))
    chart.empty = not chart.points
    return chart


def _nice_top(largest: int) -> int:
    """The y-axis maximum: ``largest`` rounded up so that four ticks land on whole numbers."""
    return max(4, 4 * math.ceil(largest / 4))


def answer_chart(distribution: dict[str, Any]) -> Chart:
    """Time to the preliminary and detailed answer: two bars per bin, none for an empty one."""
    chart = Chart("bars", "Time to answer",
                  "Working hours of each case's service level from the customer's mail to the "
                  "answer (24x7 levels: clock hours); answered deadlines only.")
    bins = distribution["bins"]
    chart.legend = [(t, COLOURS[t], TITLES[t]) for t in ANSWER_TARGETS]
    top = _nice_top(max((b[t] for b in bins for t in ANSWER_TARGETS), default=0))
    chart.y_ticks = [Label(chart.left - 6, chart.top + (1 - i / 4) * chart.plot_height,
                           str(top * i // 4)) for i in range(5)]
    group = chart.plot_width / len(bins)
    bar = group * 0.36
    for index, item in enumerate(bins):
        chart.x_labels.append(Label(chart.left + (index + 0.5) * group, chart.bottom + 16,
                                    item["label"]))
        for series, target in enumerate(ANSWER_TARGETS):
            count = item[target]
            if not count:
                continue
            height = count / top * chart.plot_height
            chart.bars.append(Mark(chart.left + index * group + group * 0.14 + series * bar,
                                   chart.bottom - height,
                                   f"{TITLES[target]} in {item['label']}: {count}", target,
                                   bar, height))
    chart.empty = not chart.bars
    return chart


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("mailbot", "report_templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["hours"] = format_hours
    env.filters["rate"] = format_rate
    return env


def render_html(report: dict[str, Any]) -> str:
    """The page for ``report`` (as built by :func:`mailbot.reports.sla_report`)."""
    template = _environment().get_template("sla.html.j2")
    return template.render(report=report, groupings=GROUPINGS, targets=TARGETS,
                           colours=COLOURS,
                           charts=[weekly_chart(report["weekly"]),
                                   answer_chart(report["time_to_answer"])])


def write_html(report: dict[str, Any], path: Path) -> None:
    """Write the page whole or not at all, so a browser never opens half a report."""
    page = render_html(report)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        temporary.write_text(page, encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise MailbotError(f"cannot write the report to {path}: {exc.strerror or exc}") from None
