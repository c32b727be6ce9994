"""SLA report over time: weekly on-time rates in the team's zone, time-to-answer histogram."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from mailbot.report_trends import bin_label, time_to_answer, week_of, weekly_on_time
from mailbot.reports import CaseOutcome, Mark, sla_report
from mailbot.schedule.deadlines import Deadlines
from report_data import KYIV, REPORT_NOW, build


def counts(tally: dict[str, Any]) -> tuple[int, int, int, float | None]:
    return tally["on_time"], tally["late"], tally["pending"], tally["on_time_rate"]


def test_weeks_in_team_zone_without_gaps(tmp_path: Path) -> None:
    # Weeks run Monday to Sunday in Kyiv; an empty week is listed with no rate, not 0 %.
    app = build(tmp_path)
    report = sla_report(app.db, Deadlines(app.config), REPORT_NOW, zone="Europe/Kyiv")
    weeks = report["weekly"]["weeks"]
    assert [(w["week"], w["cases"]) for w in weeks] == [
        ("2026-11-30", 2), ("2026-12-07", 1), ("2026-12-14", 0), ("2026-12-21", 1)]
    first, second, empty, last = weeks
    # SUP-2's ack was suppressed: only SUP-1's counts that week.
    assert counts(first["ack"]) == (1, 0, 0, 1.0)
    assert counts(first["preliminary"]) == (1, 1, 0, 0.5)
    assert counts(first["detailed"]) == (1, 1, 0, 0.5)
    assert counts(second["ack"]) == (0, 1, 0, 0.0)  # acknowledged 20 minutes after the mail
    assert counts(second["preliminary"]) == (0, 1, 0, 0.0)
    assert all(counts(empty[t]) == (0, 0, 0, None) for t in ("ack", "preliminary", "detailed"))
    # Sunday 22:30 UTC is Monday 00:30 in Kyiv; acked at once, answers not due yet.
    assert counts(last["ack"]) == (1, 0, 0, 1.0)
    assert counts(last["preliminary"]) == (0, 0, 1, None)


def test_week_follows_the_zone_it_is_given(tmp_path: Path) -> None:
    # The same Sunday-night UTC case belongs to the previous week when weeks are UTC weeks.
    app = build(tmp_path)
    report = sla_report(app.db, Deadlines(app.config), REPORT_NOW, zone="UTC")
    assert [(w["week"], w["cases"]) for w in report["weekly"]["weeks"]] == [
        ("2026-11-30", 2), ("2026-12-07", 1), ("2026-12-14", 1)]
    assert report["weekly"]["zone"] == "UTC"
    assert week_of(datetime(2026, 12, 20, 22, 30, tzinfo=timezone.utc), KYIV).isoformat() \
        == "2026-12-21"


def test_time_to_answer_histogram_in_working_hours(tmp_path: Path) -> None:
    # 1 h and 11 working hours to the preliminary answer; 11 to the detailed one.
    app = build(tmp_path)
    report = sla_report(app.db, Deadlines(app.config), REPORT_NOW)
    histogram = report["time_to_answer"]
    assert histogram["unit"] == "working hours"
    assert [b["label"] for b in histogram["bins"]] == [
        "<1h", "1–2h", "2–4h", "4–8h", "8–16h", "16–32h", "32–64h", "64h+"]
    assert [b["preliminary"] for b in histogram["bins"]] == [0, 1, 0, 0, 1, 0, 0, 0]
    assert [b["detailed"] for b in histogram["bins"]] == [0, 0, 0, 0, 1, 0, 0, 0]
    assert histogram["answered"] == {"preliminary": 2, "detailed": 1}


@pytest.mark.parametrize(("hours", "label"), [(0.0, "<1h"), (0.99, "<1h"), (1.0, "1–2h"),
                                               (63.9, "32–64h"), (64.0, "64h+"), (500.0, "64h+")])
def test_histogram_bin_edges(hours: float, label: str) -> None:
    # Bins are [low, high): an answer of exactly 1 h is in 1–2h, 64 h opens the last bin.
    outcome = CaseOutcome(REPORT_NOW, {}, {"preliminary": Mark("on_time", hours)})
    (hit,) = [b for b in time_to_answer([outcome])["bins"] if b["preliminary"]]
    assert hit["label"] == label
    assert bin_label(0, 1) == "<1h" and bin_label(64, None) == "64h+"


def test_no_cases_no_weeks() -> None:
    # An empty period has no weeks and an all-zero histogram, not an error.
    assert weekly_on_time([], "Europe/Kyiv") == {"zone": "Europe/Kyiv", "weeks": []}
    assert time_to_answer([])["answered"] == {"preliminary": 0, "detailed": 0}


def test_tables_count_the_acknowledgement(tmp_path: Path) -> None:
    # The per-level row judges acks only where one was sent, in working time of the level.
    app = build(tmp_path)
    report = sla_report(app.db, Deadlines(app.config), REPORT_NOW)
    (level,) = report["service_level"]
    assert level["cases"] == 4
    assert counts(level["ack"]) == (2, 1, 0, 0.667)
    assert level["ack"]["median_hours"] == 0.0
    assert level["ack"]["p90_hours"] == round(20 / 60, 2)
    assert counts(level["preliminary"]) == (1, 2, 1, 0.333)
