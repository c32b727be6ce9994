"""The HTML SLA report in a real headless Chromium with the network off: charts drawn, no fetch.

Chromium is Debian's package (`make system-deps`), driven by Playwright without a browser
download. Without it the test is skipped on a workstation and FAILS under CI=true, like the
Dovecot tests, so a CI machine lacking it cannot go green by skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mailbot.cli import cli
from report_data import HOSTILE_ORG, REPORT_NOW, build, config_file

pytestmark = pytest.mark.browser

CHROMIUM_MISSING = ("Chromium is not installed (no `chromium` on PATH). `make test` installs it "
                    "(target system-deps), or run: apt-get install chromium")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright.

    Not a fixture: Playwright's sync API keeps an event loop running in this thread, so the
    report (whose pipeline uses asyncio.run) must be built before the browser starts.
    """
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        _unavailable(CHROMIUM_MISSING)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing: make venv (it is in the test extras)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()


def open_offline(browser: Any, path: Path) -> tuple[Any, list[str]]:
    """Load ``path`` with the network off; every request but the file itself is aborted and
    returned in the list, so a page that tries to fetch anything is caught, not just broken."""
    context = browser.new_context(offline=True)
    page = context.new_page()
    escaped: list[str] = []

    def guard(route: Any) -> None:
        if route.request.url == path.as_uri():
            route.continue_()
        else:
            escaped.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.goto(path.as_uri(), wait_until="load", timeout=60_000)
    return page, escaped


DRAWN = """() => [...document.querySelectorAll('figure.chart')].map(figure => {
  const svg = figure.querySelector('svg');
  const shape = el => {
    const box = el.getBBox(), seen = el.getBoundingClientRect();
    return {series: el.dataset.series, w: box.width, h: box.height,
            seenW: seen.width, seenH: seen.height};
  };
  return {kind: figure.dataset.chart,
          width: svg.getBoundingClientRect().width, height: svg.getBoundingClientRect().height,
          points: [...svg.querySelectorAll('circle.point')].map(shape),
          bars: [...svg.querySelectorAll('rect.bar')].map(shape),
          lines: [...svg.querySelectorAll('path.line')].map(p => p.getTotalLength())};
})"""


def test_report_charts_drawn_offline(tmp_path: Path) -> None:
    # Written by the real command; in Chromium both charts have a visible mark per data
    # point, the page runs no script, fetches nothing, and shows the hostile name as text.
    build(tmp_path)
    page_path = tmp_path / "sla.html"
    result = CliRunner().invoke(cli, ["--config", str(config_file(tmp_path)), "report", "sla",
                                      "--now", REPORT_NOW.isoformat(), "--html", str(page_path)])
    assert result.exit_code == 0, result.output
    with chromium() as browser:
        page, escaped = open_offline(browser, page_path)
        weekly, answers = page.evaluate(DRAWN)
        scripts = page.evaluate("document.scripts.length")
        resources = page.evaluate("performance.getEntriesByType('resource').length")
        names = page.locator("table[data-grouping=organization] td.name").all_inner_texts()
    assert weekly["kind"] == "line" and answers["kind"] == "bars"
    for chart in (weekly, answers):
        assert chart["width"] > 300 and chart["height"] > 100
    assert sorted(p["series"] for p in weekly["points"]) == (
        ["ack"] * 3 + ["detailed"] * 2 + ["preliminary"] * 2)
    assert sorted(b["series"] for b in answers["bars"]) == ["detailed", "preliminary",
                                                           "preliminary"]
    for shape in weekly["points"] + answers["bars"]:
        assert min(shape["w"], shape["h"], shape["seenW"], shape["seenH"]) > 0, shape
    assert len(weekly["lines"]) == 3 and all(length > 0 for length in weekly["lines"])
    assert scripts == 0 and resources == 0
    assert HOSTILE_ORG in names
    assert escaped == []


def test_guard_catches_a_page_that_fetches(tmp_path: Path) -> None:
    # The request guard of the test above does see a fetch (so its `escaped == []` can fail).
    leaky = tmp_path / "leaky.html"
    leaky.write_text('<!DOCTYPE html><img src="http://127.0.0.1:9/pixel.png">'
                     '<link rel="stylesheet" href="https://cdn.invalid/x.css">')
    with chromium() as browser:
        _page, escaped = open_offline(browser, leaky)
    assert sorted(escaped) == ["http://127.0.0.1:9/pixel.png", "https://cdn.invalid/x.css"]
