"""Configuration: every mistake is reported as file, key and reason — never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.config import load_config
from mailbot.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

MINIMAL = '[smtp]\nfrom_address = "support@example.test"\n'
IMAP = (
    '[[mailboxes]]\nname = "support"\naddress = "support@example.test"\n'
    'imap_host = "127.0.0.1"\nusername = "u"\npassword_env = "MAILBOT_TEST_PW"\n'
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailbot.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "key", "why"),
    [
        (MINIMAL + 'port = "x"\n', "smtp.port", "valid integer"),
        (MINIMAL + "port = 70000\n", "smtp.port", "less than or equal to 65535"),
        (MINIMAL + 'form_name = "x"\n', "smtp.form_name", "unknown key"),
        ('[smtp]\nfrom_address = "not-an-address"\n', "smtp.from_address", "not an email address"),
        ("[database]\nurl='x'\n" + MINIMAL, "database.url", "only sqlite"),
        (MINIMAL + '[cases]\ntoken_prefix = "S P"\n', "cases.token_prefix", "pattern"),
        (MINIMAL + '[service_levels.standard]\ncalendar = "Mon-Fri 9-18"\n',
         "service_levels.standard", "HH:MM-HH:MM"),
        (MINIMAL + '[service_levels.standard]\ntimezone = "Mars/Olympus"\n',
         "service_levels.standard", "Mars/Olympus"),
        (MINIMAL + '[service_levels.standard]\npreliminary = "soon"\n',
         "service_levels.standard", "preliminary"),
        (MINIMAL + '[defaults]\nservice_level = "gold"\n', "", "'gold' is not defined"),
        (MINIMAL + '[defaults]\ntimezone = "Europe/Kiev2"\n', "defaults.timezone", "IANA"),
        (MINIMAL + IMAP.replace('imap_host = "127.0.0.1"\n', ""), "mailboxes[0]", "imap_host"),
        (MINIMAL + IMAP + 'poll_interval = "often"\n', "mailboxes[0].poll_interval", "interval"),
        (MINIMAL + IMAP + IMAP, "", "duplicate name 'support'"),
        (MINIMAL + IMAP, "mailboxes[0].password", "MAILBOT_TEST_PW is not set"),
        ("[smtp\n", "", "not valid TOML"),
        ("", "smtp", "required key is missing"),
    ],
)
def test_bad_config_names_file_key_and_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              text: str, key: str, why: str) -> None:
    # Each kind of mistake is reported with the file, the dotted key and what is wrong.
    monkeypatch.delenv("MAILBOT_TEST_PW", raising=False)
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.file == str(path)
    assert caught.value.key == key
    assert why in caught.value.why


def test_missing_file(tmp_path: Path) -> None:
    # A config path that does not exist says so and points at the example.
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")


def test_secrets_come_from_env_or_file_and_are_masked(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # Passwords are read from the named variable or file and never shown in repr or logs.
    monkeypatch.setenv("MAILBOT_TEST_PW", "hunter2")
    (tmp_path / "smtp.pw").write_text("s3cret\n")
    path = write(tmp_path, MINIMAL + 'username = "u"\npassword_file = "smtp.pw"\n' + IMAP)
    config = load_config(path)
    secret = config.mailboxes[0].secret()
    assert secret is not None and secret.get_secret_value() == "hunter2"
    smtp_secret = config.smtp.secret()
    assert smtp_secret is not None and smtp_secret.get_secret_value() == "s3cret"
    assert "hunter2" not in repr(config) and "s3cret" not in repr(config)
    assert "hunter2" not in str(secret)


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    # Database, storage and templates default to places next to the config file, not the cwd.
    config = load_config(write(tmp_path, MINIMAL))
    assert config.database.url == f"sqlite:///{tmp_path / 'var/mailbot.db'}"
    assert config.storage.dir == tmp_path / "var/storage"
    assert config.templates.dir == tmp_path / "templates"


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    # The documented example loads as it is (with its secrets provided).
    monkeypatch.setenv("MAILBOT_IMAP_PASSWORD", "x")
    monkeypatch.setenv("MAILBOT_SMTP_PASSWORD", "y")
    monkeypatch.setenv("MAILBOT_SECRET", "z" * 32)
    config = load_config(REPO / "config" / "mailbot.example.toml")
    assert config.mailboxes[0].name == "support"
    assert set(config.service_levels) == {"standard", "extended"}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbot", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_cli_bad_config_exits_2_without_traceback(tmp_path: Path) -> None:
    # The admin sees one line naming file, key and reason, and exit code 2.
    path = write(tmp_path, MINIMAL + "port = 0\n")
    result = run_cli("--config", str(path), "poll", "--once", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{path}: smtp.port:" in result.stderr


def test_cli_refuses_unmigrated_database(tmp_path: Path) -> None:
    # The daemon does not start on a database without the current schema and names the fix.
    path = write(tmp_path, MINIMAL)
    result = run_cli("--config", str(path), "run", cwd=tmp_path)
    assert result.returncode == 2
    assert "mailbot db upgrade" in result.stderr
    upgraded = run_cli("--config", str(path), "db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded" in upgraded.stdout
    again = run_cli("--config", str(path), "db", "upgrade", cwd=tmp_path)
    assert "already at" in again.stdout


def test_every_command_has_help_with_example(tmp_path: Path) -> None:
    # --help works for every command and shows an example invocation.
    for command in (["run"], ["poll"], ["db", "upgrade"], ["cases", "list"], ["cases", "show"],
                    ["demo"]):
        result = run_cli(*command, "--help", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Example" in result.stdout, command
