"""Import progress on stderr: a bar on a terminal, periodic one-liners in a log."""

from __future__ import annotations

import io

from mailbot.backfill.progress import BarProgress, LineProgress, progress_for, progress_line


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_line_says_count_percent_rate_and_eta() -> None:
    # 300 of 1200 in 3.5 s: 86 msg/s, the other 900 in about 10 s.
    assert progress_line(300, 1200, 3.5) == "imported 300/1200 (25%), 86 msg/s, ETA 0:00:10"
    assert progress_line(0, 1200, 0.0) == "imported 0/1200 (0%), 0 msg/s, ETA ?"
    assert progress_line(0, 0, 0.0).startswith("imported 0/0 (100%)")


def test_lines_come_every_few_seconds_and_once_at_the_end() -> None:
    # Batches every second; a line only when 5 s passed since the last, and a final one.
    out, clock = io.StringIO(), Ticker()
    progress = LineProgress(out, every_s=5.0, monotonic=clock)
    progress.start(100)
    for _ in range(9):
        clock.now += 1
        progress.advance(10)
    progress.finish()
    assert out.getvalue().splitlines() == [
        "imported 50/100 (50%), 10 msg/s, ETA 0:00:05",
        "imported 90/100 (90%), 10 msg/s, ETA 0:00:01",
    ]


def test_finish_does_not_repeat_the_last_line() -> None:
    out, clock = io.StringIO(), Ticker()
    progress = LineProgress(out, every_s=1.0, monotonic=clock)
    progress.start(10)
    clock.now += 2
    progress.advance(10)
    progress.finish()
    assert out.getvalue().splitlines() == ["imported 10/10 (100%), 5 msg/s, ETA 0:00:00"]


def test_a_terminal_gets_the_bar_a_pipe_gets_lines() -> None:
    assert isinstance(progress_for(Terminal(), "importing support/INBOX"), BarProgress)
    assert isinstance(progress_for(io.StringIO(), "importing support/INBOX"), LineProgress)


def test_bar_draws_label_position_and_rate() -> None:
    out, clock = Terminal(), Ticker()
    bar = BarProgress(out, "importing support/INBOX", monotonic=clock)
    bar.start(40)
    clock.now += 2
    bar.advance(20)
    bar.finish()
    drawn = out.getvalue()
    assert "importing support/INBOX" in drawn and "20/40" in drawn and "10 msg/s" in drawn
