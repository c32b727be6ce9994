"""Progress of an import on stderr: a bar with ETA for a person, one-liners for a log.

A terminal gets click's progress bar (position, percent, ETA, rate). Anything else
(a pipe, systemd's journal, a CI log) gets a line every few seconds such as
``imported 300/1200 (25%), 85 msg/s, ETA 0:00:11`` and a last one at the end:
control characters that redraw a bar would only litter a file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol, TextIO

import click

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def advance(self, count: int) -> None: ...

    def finish(self) -> None: ...


class NoProgress:
    """For callers that report elsewhere (tests, scripts calling the library)."""

    def start(self, total: int) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def finish(self) -> None:
        pass


def progress_line(done: int, total: int, elapsed_s: float) -> str:
    """``imported 300/1200 (25%), 85 msg/s, ETA 0:00:11`` (ETA ``?`` until a rate is known)."""
    percent = 100 * done // total if total else 100
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    eta = str(timedelta(seconds=round((total - done) / rate))) if rate > 0 else "?"
    return f"imported {done}/{total} ({percent}%), {rate:.0f} msg/s, ETA {eta}"


class LineProgress:
    """A line at most every ``every_s`` seconds, and one at the end."""

    def __init__(self, stream: TextIO, every_s: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.every_s = every_s
        self.monotonic = monotonic
        self.total = self.done = 0
        self.started = self.printed_at = 0.0
        self._printed_done = -1

    def start(self, total: int) -> None:
        self.total, self.done = total, 0
        self.started = self.printed_at = self.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        if self.monotonic() - self.printed_at >= self.every_s:
            self._print()

    def finish(self) -> None:
        if self.total and self._printed_done != self.done:
            self._print()

    def _print(self) -> None:
        now = self.monotonic()
        self.printed_at, self._printed_done = now, self.done
        print(progress_line(self.done, self.total, now - self.started), file=self.stream,
              flush=True)


class BarProgress:
    """click's progress bar (it draws nothing when the stream is not a terminal)."""

    def __init__(self, stream: TextIO, label: str,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.label = label
        self.monotonic = monotonic
        self._bar: ProgressBar[float] | None = None
        self.started = 0.0
        self.done = 0

    def start(self, total: int) -> None:
        self.started, self.done = self.monotonic(), 0
        self._bar = click.progressbar(
            length=max(total, 1), label=self.label, file=self.stream, show_eta=True,
            show_percent=True, show_pos=True,
            item_show_func=lambda rate: f"{rate:.0f} msg/s" if rate else None)
        self._bar.__enter__()

    def advance(self, count: int) -> None:
        if self._bar is None:
            return
        self.done += count
        elapsed = self.monotonic() - self.started
        self._bar.update(count, current_item=self.done / elapsed if elapsed > 0 else None)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


def progress_for(stream: TextIO, label: str) -> Progress:
    """The bar on a terminal, periodic lines anywhere else."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return BarProgress(stream, label)
    return LineProgress(stream)
