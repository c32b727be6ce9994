"""Templates through the real pipeline: Maildir in, directory sink out, real SQLite and files."""

from __future__ import annotations

import email
import os
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from sqlalchemy import select

from factories import SUPPORT, deliver, make_app, make_config, make_message
from mailbot.daemon import App, run_once
from mailbot.db.models import Case, Event, Outbox

ADMIN = "admin@example.test"


def app_with(tmp_path: Path, **templates: Any) -> App:
    (tmp_path / "templates").mkdir(exist_ok=True)
    return make_app(make_config(tmp_path, templates={"dir": str(tmp_path / "templates"),
                                                     **templates}))


def inbox(app: App) -> Path:
    assert app.config.mailboxes[0].path is not None
    return Path(app.config.mailboxes[0].path)


def sent(app: App, kind: str | None = None) -> list[EmailMessage]:
    assert app.config.smtp.directory is not None
    messages = [email.message_from_bytes(p.read_bytes(), policy=default)
                for p in sorted(Path(app.config.smtp.directory).glob("*.eml"))]  # sup-1, sup-2…
    return [m for m in messages  # type: ignore[misc]
            if kind is None or m["X-Mailbot-Kind"] == kind]


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    content: str = part.get_content()  # type: ignore[union-attr]
    return content.replace("\r\n", "\n")


def opened_event(app: App) -> dict[str, Any]:
    with app.db.session() as session:
        event = session.scalar(select(Event).where(Event.kind == "case_opened"))
        assert event is not None
        return dict(event.detail)


def write(path: Path, text: str, mtime: int) -> None:
    path.write_text(text, encoding="utf-8")
    os.utime(path, (mtime, mtime))


def test_russian_mail_gets_russian_ack_and_source_is_recorded(tmp_path: Path) -> None:
    # A mail written in Russian opens a case in "ru" (source: detected) and is answered in Russian.
    app = app_with(tmp_path)
    deliver(inbox(app), make_message(subject="Не работает принтер",
                                     body="Здравствуйте! После обновления принтер не печатает."),
            "a")
    run_once(app)
    (ack,) = sent(app, "ack")
    assert "Спасибо за обращение" in text_of(ack)
    # Deadlines in the customer's zone, with Russian day and month names.
    assert "до вт 24 нояб. 2026, 10:00 (Europe/Kyiv)" in text_of(ack)
    assert ack["Subject"] == "Re: Не работает принтер [SUP-1]"
    detail = opened_event(app)
    assert (detail["language"], detail["language_source"]) == ("ru", "detected")
    with app.db.session() as session:
        assert session.scalar(select(Outbox.language)) == "ru"


def test_ukrainian_mail_gets_ukrainian_ack(tmp_path: Path) -> None:
    # A mail written in Ukrainian is answered with the Ukrainian variant, not the Russian one.
    app = app_with(tmp_path)
    deliver(inbox(app), make_message(subject="Не працює принтер",
                                     body="Добрий день! Після оновлення принтер не друкує."), "a")
    run_once(app)
    (ack,) = sent(app, "ack")
    assert "Дякуємо за звернення" in text_of(ack)
    with app.db.session() as session:
        assert session.scalar(select(Case.language)) == "uk"


def test_undetectable_text_uses_configured_default(tmp_path: Path) -> None:
    # With too little text to judge, the case takes [defaults] language and says so.
    app = make_app(make_config(tmp_path, defaults={"language": "uk"}))
    deliver(inbox(app), make_message(subject="#4411", body="12345\n"), "a")
    run_once(app)
    detail = opened_event(app)
    assert (detail["language"], detail["language_source"]) == ("uk", "default")
    assert "Дякуємо" in text_of(sent(app, "ack")[0])


def test_template_syntax_in_customer_mail_arrives_verbatim(tmp_path: Path) -> None:
    # A subject "{{ 7*7 }} {% raw %}" is data: the ack quotes it as written, nothing is evaluated.
    app = app_with(tmp_path)
    deliver(inbox(app), make_message(sender="{{ 7*7 }} <eve@customer.test>",
                                     subject="{{ 7*7 }} {% raw %} {{ cycler }}"), "a")
    run_once(app)
    (ack,) = sent(app, "ack")
    assert ack["Subject"] == "Re: {{ 7*7 }} {% raw %} {{ cycler }} [SUP-1]"
    assert "Hello {{ 7*7 }}," in text_of(ack)
    assert "49" not in text_of(ack)


def test_crlf_in_subject_and_name_cannot_inject_headers(tmp_path: Path) -> None:
    # Encoded CR/LF in the customer's subject and display name end up as spaces in one line.
    app = app_with(tmp_path)
    raw = (
        "From: =?utf-8?q?Eve=0D=0A=0D=0ABody?= <eve@customer.test>\r\n"
        f"To: {SUPPORT}\r\n"
        "Subject: =?utf-8?q?Hi=0D=0ABcc:_victim@evil.test=0D=0A=0D=0Ainjected_body?=\r\n"
        "Message-ID: <inj@customer.test>\r\n"
        "Date: Mon, 23 Nov 2026 08:00:00 +0000\r\n"
        "\r\nplease help\r\n"
    ).encode()
    deliver(inbox(app), raw, "a")
    run_once(app)
    (ack,) = sent(app, "ack")
    assert ack["Bcc"] is None
    assert ack["Subject"] == "Re: Hi Bcc: victim@evil.test injected body [SUP-1]"
    assert ack["To"] == "eve@customer.test"
    assert text_of(ack).startswith("Hello Eve Body,\n")
    (eml,) = Path(app.config.smtp.directory or "").glob("*.eml")
    assert b"\nBcc:" not in eml.read_bytes() and b"\ninjected" not in eml.read_bytes()


def test_html_template_makes_multipart_and_escapes_customer_text(tmp_path: Path) -> None:
    # With ack.html.j2 the ack is multipart/alternative and <script> from the customer is escaped.
    app = app_with(tmp_path)
    (tmp_path / "templates" / "ack.html.j2").write_text(
        "<p>Hello {{ customer.name }}, about “{{ subject }}”: case {{ case.token }}</p>\n")
    deliver(inbox(app), make_message(sender='"<script>x()</script>" <mal@customer.test>',
                                     subject="<script>alert(1)</script>"), "a")
    run_once(app)
    (ack,) = sent(app, "ack")
    assert ack.get_content_type() == "multipart/alternative"
    html_part = ack.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()  # type: ignore[union-attr]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;script&gt;x()&lt;/script&gt;" in html and "[SUP-1]" in html
    assert "Hello <script>x()</script>," in text_of(ack)


def test_broken_template_keeps_mail_flowing_and_admin_is_told_once(tmp_path: Path) -> None:
    # A broken admin ack: every customer still gets the packaged ack; the admin gets one notice
    # per broken version of the file, not one per mail.
    app = app_with(tmp_path, admin_address=ADMIN)
    path = tmp_path / "templates" / "ack.txt.j2"
    write(path, "Subject: Re: {{ subject }}\n\n{{ custmer.name }}\n", 1_700_000_000)
    for n in range(2):
        deliver(inbox(app), make_message(sender=f"c{n}@customer.test", subject=f"q{n}",
                                         message_id=f"<q{n}@customer.test>"), f"m{n}")
        run_once(app)
    acks = sent(app, "ack")
    assert [a["Subject"] for a in acks] == ["Re: q0 [SUP-1]", "Re: q1 [SUP-2]"]
    assert all("thank you for writing to us" in text_of(a) for a in acks)
    (notice,) = sent(app, "template_error")
    assert notice["To"] == ADMIN and notice["Auto-Submitted"] == "auto-generated"
    assert notice["Subject"] == f"mailbot: template error in {path}:3"
    assert "'custmer' is undefined" in text_of(notice)
    with app.db.session() as session:
        row = session.scalar(select(Outbox).where(Outbox.kind == "template_error"))
        assert row is not None and row.case_id is None and row.status == "sent"

    # Broken differently: a new version, so one more notice; the mail still goes out.
    write(path, "Subject: {% if %}\n", 1_700_000_100)
    deliver(inbox(app), make_message(sender="c9@customer.test", subject="q9",
                                     message_id="<q9@customer.test>"), "m9")
    run_once(app)
    assert len(sent(app, "ack")) == 3
    assert len(sent(app, "template_error")) == 2


def test_restart_does_not_repeat_the_notice(tmp_path: Path) -> None:
    # The once-per-version rule survives a restart: it is kept in the outbox table, not in memory.
    path = tmp_path / "templates"
    path.mkdir()
    write(path / "ack.txt.j2", "no subject line\n", 1_700_000_000)
    for n in range(2):
        app = app_with(tmp_path, admin_address=ADMIN)  # a fresh process each time
        deliver(inbox(app), make_message(sender=f"c{n}@customer.test", subject=f"q{n}",
                                         message_id=f"<q{n}@customer.test>"), f"m{n}")
        run_once(app)
    assert len(sent(app, "ack")) == 2
    assert len(sent(app, "template_error")) == 1


def test_edit_applies_to_next_mail_without_restart(tmp_path: Path) -> None:
    # The same running app picks up an edited ack for the next customer.
    app = app_with(tmp_path)
    path = tmp_path / "templates" / "ack.txt.j2"
    write(path, "Subject: Re: {{ subject }}\n\nWording one, {{ case.token }}.\n", 1_700_000_000)
    deliver(inbox(app), make_message(), "a")
    run_once(app)
    write(path, "Subject: Got it: {{ subject }}\n\nWording two, {{ case.token }}.\n",
          1_700_000_100)
    deliver(inbox(app), make_message(sender="b@customer.test", subject="Scanner jammed",
                                     message_id="<m2@customer.test>"), "b")
    run_once(app)
    first, second = sent(app, "ack")
    assert text_of(first) == "Wording one, [SUP-1].\n"
    assert (second["Subject"], text_of(second)) == ("Got it: Scanner jammed [SUP-2]",
                                                    "Wording two, [SUP-2].\n")
