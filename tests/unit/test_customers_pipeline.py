"""The customer directory in the pipeline: Maildir in, directory sink out, real SQLite, FixedClock.

A registered customer's own zone, language, level and organization decide their new case (and
so their deadlines and morning follow-up); an unknown sender still gets a case, marked
unregistered, and — once the directory is in use — the ``ack_unregistered`` wording.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import tomli_w
from click.testing import CliRunner
from sqlalchemy import select

from factories import T0, config_data, deliver, inbox_of, make_app, make_config, make_message
from factories import plain_body, sent_mail
from mailbot.cli import cli
from mailbot.clock import FixedClock
from mailbot.customers.importer import import_customers
from mailbot.daemon import App, run_once
from mailbot.db.models import Case, Customer, Event, Job, Outbox

NEW_YORK = ZoneInfo("America/New_York")
OLGA = "olga@staff.test"
IVAN = "ivan@staff.test"
DIRECTORY = (
    "email,name,organization,timezone,language,service_level\n"
    "olena@gmail.example,Olena Kovalenko,acme,America/New_York,uk,extended\n"
    "bob@acme.example,Bob,Globex,,,\n"
)


def settings(tmp_path: Path, **over: Any) -> dict[str, Any]:
    (tmp_path / "secret").write_text("x" * 32)
    return {
        "service_levels": {"standard": {"calendar": "Mon-Fri 09:00-18:00",
                                        "timezone": "Europe/Kyiv", "holidays": "UA"},
                           "extended": {"calendar": "24x7", "timezone": "UTC"}},
        # Round-robin would give the first case to Olga; Acme's personal manager is Ivan.
        "managers": [{"email": OLGA, "name": "Olga"}, {"email": IVAN, "name": "Ivan"}],
        "security": {"secret_file": str(tmp_path / "secret")},
        "organizations": [{"name": "Acme", "domains": ["acme.example"], "manager": IVAN,
                           "timezone": "Asia/Tokyo", "language": "ru"}],
        **over,
    }


def app_for(tmp_path: Path, clock: FixedClock | None = None, *, directory: str | None = DIRECTORY,
            **over: Any) -> App:
    app = make_app(make_config(tmp_path, **settings(tmp_path, **over)), clock or FixedClock(T0))
    if directory is not None:
        path = tmp_path / "customers.csv"
        path.write_text(directory, encoding="utf-8")
        import_customers(app.db, app.config, path, now=app.clock.now())
    return app


def write(app: App, sender: str, name: str, at: datetime = T0, **kw: Any) -> None:
    deliver(inbox_of(app), make_message(sender=sender, date=at, message_id=f"<{name}@c.test>",
                                        **kw), name, at=at)
    run_once(app)


def the_case(app: App, number: int = 1) -> Case:
    with app.db.session() as session:
        case = session.scalar(select(Case).where(Case.number == number))
        assert case is not None
        return case


def opened_detail(app: App, number: int = 1) -> dict[str, Any]:
    with app.db.session() as session:
        event = session.scalar(select(Event).join(Case).where(Case.number == number,
                                                              Event.kind == "case_opened"))
        assert event is not None
        return dict(event.detail)


def test_registered_customer_settings_decide_the_case_and_the_morning_followup(
        tmp_path: Path) -> None:
    # Olena (New York, Ukrainian, extended, Acme) writes from gmail on Friday 22:00 her time: her
    # zone, language and level apply, Acme's manager gets the case although gmail is not Acme's
    # domain, and her follow-up is due 08:30 Saturday New York time (24x7 works on Saturdays).
    friday_evening = datetime(2026, 11, 27, 22, 0, tzinfo=NEW_YORK)
    clock = FixedClock(friday_evening)
    app = app_for(tmp_path, clock)
    write(app, "Olena <olena@gmail.example>", "a", at=friday_evening,
          body="Hello, the printer is on fire again. Please help.\n")
    case = the_case(app)
    assert (case.timezone, case.timezone_source) == ("America/New_York", "customer")
    assert case.language == "uk"
    assert case.service_level == "extended"
    assert case.manager_email == IVAN
    assert case.organization == "Acme"
    assert case.registered is True
    assert case.customer_name == "Olena Kovalenko"
    detail = opened_detail(app)
    assert (detail["language_source"], detail["registered"]) == ("customer", True)
    with app.db.session() as session:
        (followup,) = session.scalars(select(Job).where(Job.kind == "followup"))
    assert followup.due_at == datetime(2026, 11, 28, 8, 30, tzinfo=NEW_YORK)
    (ack,) = sent_mail(app, "ack")
    body = plain_body(ack)
    assert "Дякуємо за звернення" in body and "(America/New_York)" in body
    assert sent_mail(app, "ack_unregistered") == []


def test_a_plain_organization_in_the_directory_beats_the_domain_match(tmp_path: Path) -> None:
    # Bob writes from acme.example, but the directory says he is Globex's (not configured): the
    # case records Globex, and Acme's manager, zone and language do not apply.
    app = app_for(tmp_path)
    write(app, "bob@acme.example", "a", body="Hello, the printer is on fire again.\n")
    case = the_case(app)
    assert (case.organization, case.registered) == ("Globex", True)
    assert case.manager_email == OLGA  # round-robin, not Acme's Ivan
    assert case.timezone != "Asia/Tokyo" and case.language == "en"
    assert case.service_level == "standard"


def test_an_organization_domain_without_a_row_is_registered(tmp_path: Path) -> None:
    # Carol is not in the directory, but Acme's domain is hers: registered, Acme's settings, `ack`.
    app = app_for(tmp_path)
    write(app, "carol@acme.example", "a")
    case = the_case(app)
    assert (case.registered, case.organization, case.manager_email) == (True, "Acme", IVAN)
    assert (case.timezone, case.timezone_source, case.language) == (
        "Asia/Tokyo", "organization", "ru")
    assert len(sent_mail(app, "ack")) == 1


def test_unknown_sender_gets_a_case_marked_unregistered_and_its_own_ack(tmp_path: Path) -> None:
    # A stranger still gets a case and deadlines; the case says "unregistered" in list and show,
    # and the acknowledgement asks them who they write for.
    app = app_for(tmp_path)
    write(app, "Dave <dave@stranger.example>", "a")
    case = the_case(app)
    assert (case.registered, case.organization) == (False, None)
    assert case.acknowledged_at == T0  # an ack_unregistered is an acknowledgement too
    assert sent_mail(app, "ack") == []
    (ack,) = sent_mail(app, "ack_unregistered")
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["Subject"] == "Re: Printer on fire [SUP-1]"
    body = plain_body(ack)
    assert "could not find your address dave@stranger.example" in body
    assert "Tue 24 Nov 2026, 10:00 (Europe/Kyiv)" in body  # the same promise as `ack`
    assert opened_detail(app)["registered"] is False
    with app.db.session() as session:
        queued = session.scalar(select(Event).where(Event.kind == "ack_queued"))
        assert queued is not None and queued.detail["mail_kind"] == "ack_unregistered"

    path = tmp_path / "cli.toml"
    path.write_text(tomli_w.dumps(config_data(tmp_path, **settings(tmp_path))))
    runner = CliRunner()
    (row,) = json.loads(runner.invoke(cli, ["--config", str(path), "cases", "list",
                                            "--json"]).output)
    assert row["registered"] is False
    table = runner.invoke(cli, ["--config", str(path), "cases", "list"]).output.splitlines()
    assert table[0].split()[:4] == ["CASE", "STATUS", "CUSTOMER", "REGISTERED"]
    assert table[1].split()[:4] == ["[SUP-1]", "open", "dave@stranger.example", "no"]
    shown = runner.invoke(cli, ["--config", str(path), "cases", "show", "SUP-1", "--json"])
    assert json.loads(shown.output)["registered"] is False
    text = runner.invoke(cli, ["--config", str(path), "cases", "show", "SUP-1"]).output
    assert "customer dave@stranger.example (unregistered)" in text


@pytest.mark.parametrize(("mode", "directory", "expected"), [
    ("auto", None, "ack"),                    # no directory: today's behaviour for everyone
    ("auto", DIRECTORY, "ack_unregistered"),
    ("always", None, "ack_unregistered"),
    ("never", DIRECTORY, "ack"),
])
def test_unregistered_ack_switch(tmp_path: Path, mode: str, directory: str | None,
                                 expected: str) -> None:
    # [customers] unregistered_ack decides the stranger's wording; the case is unregistered anyway.
    app = app_for(tmp_path, directory=directory, customers={"unregistered_ack": mode})
    write(app, "dave@stranger.example", "a")
    assert the_case(app).registered is False
    assert [m["X-Mailbot-Kind"] for m in sent_mail(app)
            if m["X-Mailbot-Kind"].startswith("ack")] == [expected]


def test_strangers_acks_count_against_the_loop_limit(tmp_path: Path) -> None:
    # A robot without markers opening case after case gets one ack_unregistered, then silence.
    app = app_for(tmp_path, loop_protection={"max_acks_per_sender": 1})
    write(app, "robot@stranger.example", "a", subject="Ticket 1")
    write(app, "robot@stranger.example", "b", subject="Ticket 2")
    assert len(sent_mail(app, "ack_unregistered")) == 1
    with app.db.session() as session:
        suppressed = session.scalar(select(Event).join(Case).where(
            Case.number == 2, Event.kind == "reply_suppressed"))
        assert suppressed is not None and "rate limit" in suppressed.detail["reason"]
        assert session.scalar(select(Outbox).where(Outbox.case_id == 2,
                                                   Outbox.kind.startswith("ack"))) is None


def test_a_level_removed_from_the_config_since_the_import_falls_back(tmp_path: Path) -> None:
    # The case must open even if the customer's imported level no longer exists.
    app = app_for(tmp_path, directory=None)
    with app.db.transaction() as session:
        session.add(Customer(email="erin@example.org", name="", service_level="gold",
                             created_at=T0, updated_at=T0))
    write(app, "erin@example.org", "a")
    case = the_case(app)
    assert (case.service_level, case.registered) == ("standard", True)


def test_templates_check_and_preview_cover_ack_unregistered(tmp_path: Path) -> None:
    # The new kind is checked in every language and previews like any other.
    path = tmp_path / "mailbot.toml"
    path.write_text(tomli_w.dumps(config_data(tmp_path)))
    runner = CliRunner()
    checked = runner.invoke(cli, ["--config", str(path), "templates", "check"])
    assert checked.exit_code == 0, checked.output
    lines = [line for line in checked.output.splitlines() if " ack_unregistered " in line]
    assert [line.split()[2] for line in lines] == ["en", "ru", "uk"]
    assert all(line.startswith("ok") for line in lines)
    shown = runner.invoke(cli, ["--config", str(path), "templates", "preview",
                                "ack_unregistered", "--lang", "ru"])
    assert shown.exit_code == 0, shown.output
    assert "X-Mailbot-Kind: ack_unregistered" in shown.output
    assert "Мы не нашли ваш адрес olena@customer.example" in shown.output


def test_directory_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    # The same lookups with PostgreSQL as the store: a registered customer's settings and manager,
    # a stranger's unregistered case and ack_unregistered.
    app = app_for(tmp_path, database={"url": pg_url})
    try:
        write(app, "olena@gmail.example", "a")
        write(app, "dave@stranger.example", "b")
        first, second = the_case(app, 1), the_case(app, 2)
        assert (first.registered, first.timezone_source, first.language, first.manager_email,
                first.service_level) == (True, "customer", "uk", IVAN, "extended")
        assert second.registered is False
        assert [m["To"] for m in sent_mail(app, "ack_unregistered")] == ["dave@stranger.example"]
        assert [m["To"] for m in sent_mail(app, "ack")] == ["olena@gmail.example"]
    finally:
        app.db.dispose()
