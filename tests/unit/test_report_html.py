"""`mailbot report sla --html`: one self-contained page, customer data escaped, charts drawn."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner, Result

from mailbot.cli import cli
from mailbot.report_html import answer_chart, weekly_chart
from report_data import HOSTILE_ORG, REPORT_NOW, build, config_file


def report(tmp_path: Path, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["--config", str(config_file(tmp_path)), "report", "sla",
              "--now", REPORT_NOW.isoformat(), *args])


def test_html_report_is_self_contained_and_escaped(tmp_path: Path) -> None:
    # The page loads nothing and runs nothing; an organization named like HTML stays text.
    build(tmp_path)
    page_path = tmp_path / "sla.html"
    result = report(tmp_path, "--html", str(page_path))
    assert result.exit_code == 0, result.output + result.stderr
    assert result.stdout.strip() == f"report written to {page_path}"
    page = page_path.read_text(encoding="utf-8")
    assert HOSTILE_ORG not in page and "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Sons" in page
    # Nothing to fetch: no src/href attributes, no CSS url() or @import; the only URL is the
    # SVG namespace, which browsers never request.
    assert not re.search(r"\s(src|href)\s*=", page)
    assert "url(" not in page and "@import" not in page
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) == {"http://www.w3.org/2000/svg"}
    assert not list(tmp_path.glob(".sla.html.tmp"))


def test_html_charts_have_a_point_per_decided_week_and_a_bar_per_answered_bin(
        tmp_path: Path) -> None:
    # Known cases: acks decided in 3 of 4 weeks, answers in 2; the empty week breaks the line.
    build(tmp_path)
    page_path = tmp_path / "sla.html"
    assert report(tmp_path, "--html", str(page_path), "--zone", "Europe/Kyiv").exit_code == 0
    page = page_path.read_text(encoding="utf-8")
    points = re.findall(r'<circle class="point" data-series="(\w+)"', page)
    assert (points.count("ack"), points.count("preliminary"), points.count("detailed")) == (3, 2, 2)
    bars = re.findall(r'<rect class="bar" data-series="(\w+)"', page)
    assert sorted(bars) == ["detailed", "preliminary", "preliminary"]
    (ack_line,) = re.findall(r'<path class="line" data-series="ack" d="([^"]+)"', page)
    assert ack_line.count("M") == 2  # the week of 14 Dec has no decided ack: a gap
    for week in ("30 Nov 2026", "7 Dec 2026", "14 Dec 2026", "21 Dec 2026"):
        assert f">{week}</text>" in page
    assert "week of 7 Dec 2026: acknowledgement 0 of 1 on time (0%)" in page
    assert "Weeks start on Monday in Europe/Kyiv" in page


def test_chart_geometry_follows_the_numbers(tmp_path: Path) -> None:
    # 100 % sits on the top gridline, 0 % on the bottom one; the tallest bar fills its share.
    weekly = {"zone": "UTC", "weeks": [
        {"week": "2026-11-30", "cases": 1,
         **{t: {"on_time": n, "late": 1 - n, "pending": 0, "on_time_rate": float(n)}
            for t, n in (("ack", 1), ("preliminary", 0), ("detailed", 1))}}]}
    chart = weekly_chart(weekly)
    by_series = {p.series: p for p in chart.points}
    assert by_series["ack"].y == chart.top and by_series["preliminary"].y == chart.bottom
    bins = [{"label": "<1h", "preliminary": 8, "detailed": 0},
            {"label": "1–2h", "preliminary": 2, "detailed": 4}]
    histogram = answer_chart({"bins": bins})
    full = histogram.plot_height  # the axis tops out at 8, the largest count
    assert [t.text for t in histogram.y_ticks] == ["0", "2", "4", "6", "8"]
    assert [(b.series, b.height) for b in histogram.bars] == [
        ("preliminary", full), ("preliminary", full / 4), ("detailed", full / 2)]
    assert all(b.y + b.height == histogram.bottom for b in histogram.bars)
    assert answer_chart({"bins": [{"label": "<1h", "preliminary": 0, "detailed": 0}]}).empty


def test_html_and_json_together(tmp_path: Path) -> None:
    # With --json too, stdout stays pure JSON (with the weekly and histogram data added).
    build(tmp_path)
    result = report(tmp_path, "--json", "--html", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [w["week"] for w in data["weekly"]["weeks"]][0] == "2026-11-30"
    assert data["time_to_answer"]["answered"] == {"preliminary": 2, "detailed": 1}
    assert "report written to" in result.stderr and (tmp_path / "r.html").exists()


def test_unwritable_html_path_is_one_line(tmp_path: Path) -> None:
    # A directory that does not exist is a one-line error and exit 1, not a traceback.
    build(tmp_path)
    result = report(tmp_path, "--html", str(tmp_path / "missing" / "sla.html"))
    assert result.exit_code == 1
    assert result.stderr.startswith("mailbot: cannot write the report to ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_bad_zone_is_a_usage_error(tmp_path: Path) -> None:
    # --zone must be an IANA zone.
    build(tmp_path)
    result = report(tmp_path, "--zone", "Mars/Olympus")
    assert result.exit_code == 2 and "not an IANA time zone" in result.stderr
