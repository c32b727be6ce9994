"""Templates on real servers: a Ukrainian mail APPENDed to Dovecot, the mail read from aiosmtpd."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from factories import config_data, imap_mailbox, make_app, make_message, smtp_section
from mailbot.config import config_from_dict
from mailbot.daemon import run_once
from servers import imap_append

pytestmark = pytest.mark.integration


def test_ukrainian_html_ack_and_broken_template_notice_over_smtp(
        tmp_path: Path, imap_account: Any, smtp_server: Any) -> None:
    # A Ukrainian customer gets a Ukrainian multipart ack although the admin's Ukrainian text
    # template is broken (packaged text + admin HTML); the admin gets one notice over SMTP.
    templates = tmp_path / "templates"
    templates.mkdir()
    broken = templates / "ack.uk.txt.j2"
    broken.write_text("Subject: {{ subject }\n\n…\n", encoding="utf-8")
    os.utime(broken, (1_700_000_000, 1_700_000_000))
    (templates / "ack.uk.html.j2").write_text(
        "<p>Добрий день, {{ customer.name }}! Звернення {{ case.token }}.</p>\n", encoding="utf-8")
    data = config_data(tmp_path, mailboxes=[imap_mailbox(imap_account)],
                       smtp=smtp_section(smtp_server),
                       templates={"dir": str(templates), "admin_address": "admin@example.test"})
    app = make_app(config_from_dict(data, source=tmp_path / "mailbot.toml"))
    imap_append(imap_account, make_message(
        sender="Олег <oleh@customer.test>", subject="Не працює принтер",
        body="Добрий день! Після оновлення принтер не друкує. Допоможіть, будь ласка.\n"))
    report = run_once(app)
    assert report.ok
    # Other features may send more (a follow-up); the ack and one notice are what matter here.
    received = {m.message["X-Mailbot-Kind"]: m
                for m in smtp_server.wait_for(len(report.flushed.sent))}
    assert [m.message["X-Mailbot-Kind"] for m in smtp_server.wait_for(len(report.flushed.sent))
            ].count("template_error") == 1
    ack = received["ack"].message
    assert received["ack"].rcpt_tos == ("oleh@customer.test",)
    assert ack.get_content_type() == "multipart/alternative"
    assert "Дякуємо за звернення" in ack.get_body(("plain",)).get_content()
    assert "Добрий день, Олег! Звернення [SUP-1]." in ack.get_body(("html",)).get_content()
    notice = received["template_error"]
    assert notice.rcpt_tos == ("admin@example.test",)
    assert str(broken) in notice.message["Subject"]
