"""`mailbot doctor` against real Dovecot, a real SMTP sink and real SQLite: good and broken setups."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner
from factories import config_data, imap_mailbox, smtp_section
from servers import free_port, imap_connect

from mailbot.cli import cli

pytestmark = pytest.mark.integration


def write(tmp_path: Path, account: Any, smtp: Any, *, upgrade: bool = True,
          **mailbox_over: Any) -> Path:
    (tmp_path / "templates").mkdir(exist_ok=True)
    data = config_data(tmp_path, mailboxes=[imap_mailbox(account, **mailbox_over)],
                       smtp=smtp_section(smtp) if smtp is not None else
                       smtp_section(_Down(), host="127.0.0.1"))
    path = tmp_path / "mailbot.toml"
    path.write_text(tomli_w.dumps(data))
    if upgrade:
        result = CliRunner().invoke(cli, ["--config", str(path), "db", "upgrade"])
        assert result.exit_code == 0, result.output
    return path


class _Down:
    """Where an SMTP server would be, but nothing listens."""

    host = "127.0.0.1"
    port = free_port()


def doctor(path: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(path), "doctor", *args])


def lines_of(output: str) -> dict[str, str]:
    return {line[5:].split(":", 1)[0]: line for line in output.splitlines() if line[:4] in
            ("ok  ", "FAIL")}


def test_healthy_setup_is_all_ok(tmp_path: Path, imap_account: Any, smtp_server: Any) -> None:
    # Every check passes on a working setup; IMAP reports the folder and IDLE/MOVE/UIDPLUS; no mail sent.
    path = write(tmp_path, imap_account, smtp_server)
    result = doctor(path)
    assert result.exit_code == 0, result.output
    checks = lines_of(result.output)
    assert set(checks) == {"config", "database", "imap support", "smtp", "templates"}
    assert all(line.startswith("ok   ") for line in checks.values()), result.output
    assert checks["imap support"] == (f"ok   imap support: {imap_account.host}:"
                                      f"{imap_account.port} INBOX (IDLE MOVE UIDPLUS)")
    assert f"{smtp_server.host}:{smtp_server.port}" in checks["smtp"]
    assert smtp_server.messages == []


def test_wrong_password_missing_folder_smtp_down_unmigrated_db(
        tmp_path: Path, imap_account: Any) -> None:
    # Each broken piece is one FAIL line with its precise reason, and the exit code is 1.
    path = write(tmp_path, imap_account, None, upgrade=False, folder="Support")
    result = doctor(path)
    assert result.exit_code == 1, result.output
    checks = lines_of(result.output)
    assert checks["config"].startswith("ok")
    assert "no schema yet; run `mailbot db upgrade`" in checks["database"]
    assert "folder 'Support' does not exist" in checks["imap support"]
    assert checks["smtp"] == f"FAIL smtp: connection refused (127.0.0.1:{_Down.port})"
    (Path(imap_account.maildir).parent / f".{imap_account.username}.pw").write_text("wrong\n")
    wrong = lines_of(doctor(path).output)["imap support"]
    assert wrong.startswith("FAIL") and f"login as '{imap_account.username}'" in wrong
    assert "refused" in wrong


def test_json_output(tmp_path: Path, imap_account: Any, smtp_server: Any) -> None:
    # --json prints {"ok", "checks": [{"name", "ok", "detail"}]} for scripts and monitoring.
    client = imap_connect(imap_account)
    client.create_folder("Support")
    client.logout()
    path = write(tmp_path, imap_account, smtp_server, folder="Support")
    result = doctor(path, "--json")
    report = json.loads(result.output)
    assert result.exit_code == 0 and report["ok"] is True
    assert [c["name"] for c in report["checks"]] == ["config", "database", "imap support",
                                                     "smtp", "templates"]


def test_bad_config_exits_2_with_file_and_key(tmp_path: Path) -> None:
    # An unusable config is the only check that can run: FAIL with file and key, exit 2.
    path = tmp_path / "mailbot.toml"
    path.write_text('[smtp]\nfrom_address = "not an address"\n')
    result = doctor(path)
    assert result.exit_code == 2
    (line,) = result.output.splitlines()
    assert line.startswith("FAIL config: ") and str(path) in line and "smtp.from_address" in line


def test_broken_template_is_reported(tmp_path: Path, imap_account: Any, smtp_server: Any) -> None:
    # A template that does not render fails the templates check with file:line.
    path = write(tmp_path, imap_account, smtp_server)
    (tmp_path / "templates" / "ack.txt.j2").write_text("Subject: hi\n\n{{ case.nonexistent }}\n")
    result = doctor(path)
    assert result.exit_code == 1
    line = lines_of(result.output)["templates"]
    assert line.startswith("FAIL templates: ") and "ack.txt.j2" in line


def test_help_has_an_example() -> None:
    # `mailbot doctor --help` explains itself with an example, like every command.
    result = CliRunner().invoke(cli, ["doctor", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "--json" in result.output
