"""`mailbot templates check` and `templates preview` on a real config file and template files."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner

from factories import config_data, deliver, make_config, make_message
from mailbot.cli import cli
from mailbot.config import ConfigError, config_from_dict
from mailbot.db.models import Case
from mailbot.outbox.contexts import ack_context
from mailbot.outbox.render import known_kinds


def setup(tmp_path: Path, **over: object) -> tuple[CliRunner, Path]:
    (tmp_path / "templates").mkdir(exist_ok=True)
    path = tmp_path / "mailbot.toml"
    path.write_text(tomli_w.dumps(config_data(tmp_path, **over)))
    return CliRunner(), path


def test_check_passes_on_shipped_templates(tmp_path: Path) -> None:
    # With only the packaged defaults, every kind renders in en, ru and uk and check exits 0.
    runner, path = setup(tmp_path)
    result = runner.invoke(cli, ["--config", str(path), "templates", "check"])
    assert result.exit_code == 0, result.output
    ok_lines = [line for line in result.output.splitlines() if line.startswith("ok ")]
    assert len(ok_lines) == len(known_kinds()) * 3
    assert any(" relay " in line and " uk " in line and line.endswith("relay.uk.txt.j2")
               for line in ok_lines)
    assert result.output.rstrip().endswith("all templates ok")


def test_check_reports_file_line_and_message_and_exits_1(tmp_path: Path) -> None:
    # Broken admin files are named as file:line: message; an unknown file name is refused too.
    runner, path = setup(tmp_path)
    templates = tmp_path / "templates"
    (templates / "relay.ru.txt.j2").write_text("Subject: x\n\n{{ manager.nme }}\n")
    (templates / "closed.html.j2").write_text("<p>{% for x in %}</p>\n")
    (templates / "acknowledge.txt.j2").write_text("Subject: x\n")
    result = runner.invoke(cli, ["--config", str(path), "templates", "check"])
    assert result.exit_code == 1
    assert f"{templates / 'relay.ru.txt.j2'}:3: 'dict object' has no attribute 'nme'" in result.output
    assert f"{templates / 'closed.html.j2'}:1: " in result.output
    assert f"{templates / 'acknowledge.txt.j2'}: not a template name" in result.output
    assert "3 template problem(s)" in result.output


def test_check_covers_an_admin_language_variant(tmp_path: Path) -> None:
    # An admin's German variant is checked too (a language beyond the built-in three).
    runner, path = setup(tmp_path)
    (tmp_path / "templates" / "ack.de.txt.j2").write_text(
        "Subject: Re: {{ subject }}\n\nGuten Tag {{ customer.nam }}\n")
    result = runner.invoke(cli, ["--config", str(path), "templates", "check"])
    assert result.exit_code == 1
    assert "ack.de.txt.j2:3: 'dict object' has no attribute 'nam'" in result.output


def test_preview_with_sample_data_prints_headers_and_body(tmp_path: Path) -> None:
    # preview NAME --lang uk prints the composed mail: token in the subject, Ukrainian body.
    runner, path = setup(tmp_path)
    result = runner.invoke(cli, ["--config", str(path), "templates", "preview", "ack",
                                 "--lang", "uk"])
    assert result.exit_code == 0, result.output
    head, _, body = result.output.partition("\n\n")
    assert "Subject: Re: Printer on fire [SUP-42]" in head
    assert "To: olena@customer.example" in head and "Auto-Submitted: auto-replied" in head
    assert body.startswith("Добрий день, Олена Коваленко!")


def test_preview_with_a_real_case_uses_its_data(tmp_path: Path) -> None:
    # preview --case renders with the case's own token, subject, customer and deadlines.
    runner, path = setup(tmp_path)
    assert runner.invoke(cli, ["--config", str(path), "db", "upgrade"]).exit_code == 0
    deliver(tmp_path / "inbox", make_message(subject="Scanner jammed"), "a")
    polled = runner.invoke(cli, ["--config", str(path), "poll", "--once",
                                 "--now", "2026-11-23T10:00:00+02:00"])
    assert polled.exit_code == 0, polled.output
    result = runner.invoke(cli, ["--config", str(path), "templates", "preview", "ack",
                                 "--case", "SUP-1"])
    assert result.exit_code == 0, result.output
    assert "Subject: Re: Scanner jammed [SUP-1]" in result.output
    assert "To: alice@customer.test" in result.output
    assert "Hello Alice Customer," in result.output
    assert "Tue 24 Nov 2026, 10:00 (Europe/Kyiv)" in result.output
    manager = runner.invoke(cli, ["--config", str(path), "templates", "preview",
                                  "manager_new_case", "--case", "1", "--lang", "ru"])
    assert manager.exit_code == 0, manager.output
    assert "Subject: Новое обращение: Scanner jammed [SUP-1]" in manager.output
    missing = runner.invoke(cli, ["--config", str(path), "templates", "preview", "ack",
                                  "--case", "SUP-9"])
    assert missing.exit_code == 1 and "no case SUP-9" in missing.output


def test_preview_refuses_unknown_name_and_bad_language(tmp_path: Path) -> None:
    # A name that is no mail kind or a malformed --lang is bad usage: exit 2, no traceback.
    runner, path = setup(tmp_path)
    unknown = runner.invoke(cli, ["--config", str(path), "templates", "preview", "acks"])
    assert unknown.exit_code == 2 and "is not one of ack" in unknown.output
    bad = runner.invoke(cli, ["--config", str(path), "templates", "preview", "ack",
                              "--lang", "Ukrainian"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


@pytest.mark.parametrize("command", [["templates", "check"], ["templates", "preview"]])
def test_help_has_an_example(command: list[str]) -> None:
    # Every command's --help shows an example.
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0 and "Example" in result.output


def test_admin_address_must_be_an_email(tmp_path: Path) -> None:
    # [templates] admin_address is validated at start like every other address.
    data = config_data(tmp_path, templates={"admin_address": "not an address"})
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, source=tmp_path / "mailbot.toml")
    assert caught.value.key == "templates.admin_address"
    ok = config_from_dict(config_data(tmp_path, templates={"admin_address": "Admin@Example.test"}),
                          source=tmp_path / "mailbot.toml")
    assert ok.templates.admin_address == "admin@example.test"


def test_ack_context_reduces_header_values_to_one_line(tmp_path: Path) -> None:
    # Names and subjects stored with CR/LF reach templates as one line (header injection guard).
    config = make_config(tmp_path)
    at = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
    case = Case(token="[SUP-7]", number=7, subject="Hi\r\nBcc: x@evil.test", status="open",
                customer_name="Eve\nBcc: y@evil.test", customer_email="eve@customer.test",
                service_level="standard", timezone="Europe/Kyiv", preliminary_due=at,
                detailed_due=None)
    context = ack_context(case, at, config)
    assert context["subject"] == context["case"]["subject"] == "Hi Bcc: x@evil.test"
    assert context["customer"]["name"] == "Eve Bcc: y@evil.test"
    assert context["received_at"] == "Mon 23 Nov 2026, 10:00 (Europe/Kyiv)"
    assert context["detailed_due"] == ""
