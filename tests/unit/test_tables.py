"""Listings: plain, stable columns when piped; a rich table on a terminal; data never markup."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import tomli_w
from click.testing import CliRunner

from factories import config_data, deliver, make_message
from mailbot.cli import cli
from mailbot.views import Table, render_table

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TABLE = Table(("CASE", "SUBJECT", "SIZE"),
              [("[SUP-1]", "[bold]not markup[/bold]", "7"), ("[SUP-12]", "x", "1024")],
              empty="no cases", right=frozenset({2}))


def test_plain_form_is_stable() -> None:
    # Piped output: columns two spaces apart, numbers right-aligned, no trailing blanks.
    assert render_table(TABLE) == (
        "CASE      SUBJECT                  SIZE\n"
        "[SUP-1]   [bold]not markup[/bold]     7\n"
        "[SUP-12]  x                        1024")
    assert str(TABLE) == render_table(TABLE)
    assert render_table(Table(("A",), [], empty="no cases")) == "no cases"
    titled = Table(("A", "B"), [("1", "2")], title="By manager")
    assert render_table(titled) == "By manager:\n  A  B\n  1  2"


def test_terminal_form_draws_and_keeps_data_literal() -> None:
    # On a terminal: a drawn header rule and bold header; square brackets in data stay text.
    drawn = render_table(TABLE, width=80)
    plain = ANSI.sub("", drawn)
    assert "\x1b[" in drawn and "─" in plain
    assert "[bold]not markup[/bold]" in plain and "[SUP-12]" in plain
    assert max(len(line) for line in plain.splitlines()) <= 80
    assert ANSI.sub("", render_table(Table(("A",), [], empty="no cases"), 80)) == "no cases"


def cli_setup(tmp_path: Path) -> Path:
    path = tmp_path / "mailbot.toml"
    path.write_text(tomli_w.dumps(config_data(tmp_path)))
    deliver(tmp_path / "inbox", make_message(subject="[red]Printer[/red] on fire"), "a")
    for args in (["db", "upgrade"], ["poll", "--once", "--now", "2026-11-23T10:00:00+02:00"]):
        result = CliRunner().invoke(cli, ["--config", str(path), *args])
        assert result.exit_code == 0, result.output
    return path


def test_cases_list_piped_is_plain(tmp_path: Path) -> None:
    # Through a pipe (as scripts and CliRunner see it): the plain header, no escape codes.
    path = cli_setup(tmp_path)
    output = CliRunner().invoke(cli, ["--config", str(path), "cases", "list"]).output
    assert output.splitlines()[0].split() == ["CASE", "STATUS", "CUSTOMER", "REGISTERED", "SUBJECT",
                                              "OPENED", "(UTC)", "PRELIMINARY", "DUE", "(UTC)"]
    assert "\x1b[" not in output and "[red]Printer[/red] on fire" in output


def test_cases_list_on_a_terminal_is_a_rich_table(tmp_path: Path) -> None:
    # The real command with its stdout on a pseudo-terminal draws a table sized to it.
    path = cli_setup(tmp_path)
    leader, follower = os.openpty()
    env = {**os.environ, "COLUMNS": "150", "LINES": "40", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    process = subprocess.run([sys.executable, "-c", "from mailbot.cli import main; main()",
                              "--config", str(path), "cases", "list"],
                             stdout=follower, stderr=subprocess.PIPE, env=env, timeout=60)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other side is closed and drained
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.returncode == 0, process.stderr.decode()
    drawn = b"".join(chunks).decode()
    plain = ANSI.sub("", drawn)
    assert "\x1b[" in drawn and "─" in plain
    assert "[SUP-1]" in plain and "[red]Printer[/red] on fire" in plain
    assert max(len(line) for line in plain.splitlines()) <= 150
