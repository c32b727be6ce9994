"""`mailbot poll --once` and `cases list/show` on a real config file, database and Maildir."""

from __future__ import annotations

import json
from pathlib import Path

import tomli_w
from click.testing import CliRunner

from factories import config_data, deliver, make_message
from mailbot.cli import cli

JSON_FIELDS = {"id", "token", "subject", "status", "customer", "manager", "service_level",
               "opened_at", "preliminary_due", "detailed_due", "first_response_at", "messages"}


def setup(tmp_path: Path) -> tuple[CliRunner, Path]:
    path = tmp_path / "mailbot.toml"
    path.write_text(tomli_w.dumps(config_data(tmp_path)))
    runner = CliRunner()
    result = runner.invoke(cli, ["--config", str(path), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    return runner, path


def test_poll_once_then_list_and_show(tmp_path: Path) -> None:
    # One pass opens a case; list and show report it in text and in the documented JSON.
    runner, path = setup(tmp_path)
    deliver(tmp_path / "inbox", make_message(), "a")
    result = runner.invoke(cli, ["--config", str(path), "poll", "--once",
                                 "--now", "2026-11-23T10:00:00+02:00"])
    assert result.exit_code == 0, result.output
    assert "1 stored" in result.output and "outbox: 1 sent" in result.output

    listed = runner.invoke(cli, ["--config", str(path), "cases", "list", "--json"])
    (row,) = json.loads(listed.output)
    assert JSON_FIELDS <= set(row)
    assert (row["id"], row["token"], row["status"], row["customer"]) == (
        1, "[SUP-1]", "open", "alice@customer.test")
    assert row["messages"] == 2  # the customer's mail and our acknowledgement
    assert row["preliminary_due"] == "2026-11-24T08:00:00Z"

    text = runner.invoke(cli, ["--config", str(path), "cases", "list"]).output
    assert "[SUP-1]" in text and "Printer on fire" in text

    shown = json.loads(runner.invoke(cli, ["--config", str(path), "cases", "show", "SUP-1",
                                           "--json"]).output)
    assert [m["direction"] for m in shown["messages"]] == ["in", "out"]
    assert [e["kind"] for e in shown["events"]][:2] == ["case_opened", "message_received"]
    assert shown["outbox"][0]["status"] == "sent"
    readable = runner.invoke(cli, ["--config", str(path), "cases", "show", "1"]).output
    assert "Conversation:" in readable and "ack_sent" in readable


def test_show_unknown_case_fails(tmp_path: Path) -> None:
    # Asking for a case that does not exist is exit 1 with a one-line message.
    runner, path = setup(tmp_path)
    result = runner.invoke(cli, ["--config", str(path), "cases", "show", "SUP-42"])
    assert result.exit_code == 1
    assert "no case SUP-42" in result.output


def test_bad_now_is_a_usage_error(tmp_path: Path) -> None:
    # --now that is not ISO 8601 is rejected with exit 2.
    runner, path = setup(tmp_path)
    result = runner.invoke(cli, ["--config", str(path), "poll", "--once", "--now", "tomorrow"])
    assert result.exit_code == 2
