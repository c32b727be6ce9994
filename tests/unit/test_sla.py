"""Service levels end to end: deadlines, reminders, escalations, pause/resume — injected clock."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from factories import (deliver, inbox_of, make_app, make_config, make_message, sent_mail,
                       staff_reply)
from mailbot.clock import FixedClock
from mailbot.daemon import App, run_once
from mailbot.db.models import Case, Event, Job

KYIV = ZoneInfo("Europe/Kyiv")
OLGA = "olga@staff.test"
# Friday 27 Nov 2026, 19:00 in Kyiv: after hours before a weekend (8x5, Mon-Fri 09-18).
FRIDAY_EVENING = datetime(2026, 11, 27, 19, 0, tzinfo=KYIV)


def kyiv(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11 if day >= 27 else 12, day, hour, minute, tzinfo=KYIV)


def sla_app(tmp_path: Path, clock: FixedClock, **over: Any) -> App:
    (tmp_path / "secret").write_text("x" * 32)
    settings: dict[str, Any] = {
        "managers": [{"email": OLGA, "name": "Olga", "timezone": "Europe/Kyiv"}],
        "security": {"secret_file": str(tmp_path / "secret")},
        "escalation": {"address": "head@staff.test", "supervisor": "boss@staff.test",
                       "supervisor_after": "4h"},
    }
    settings.update(over)
    return make_app(make_config(tmp_path, **settings), clock)


inbox = inbox_of
sent = sent_mail


def case_of(app: App) -> Case:
    with app.db.session() as session:
        case = session.scalar(select(Case))
        assert case is not None
        return case


def opened_monday(tmp_path: Path) -> tuple[App, FixedClock]:
    """An app whose customer wrote on Monday 30 Nov, 10:00 Kyiv time (inside working hours)."""
    clock = FixedClock(kyiv(30, 10))
    app = sla_app(tmp_path, clock)
    deliver(inbox(app), make_message(), "a", at=clock.now())
    run_once(app)
    return app, clock


def at(app: App, clock: FixedClock, when: datetime) -> None:
    clock.set(when)
    run_once(app)


def test_friday_evening_case_is_not_escalated_on_saturday(tmp_path: Path) -> None:
    # 8x5: a Friday-evening case is due Monday 18:00; Saturday passes quietly; Monday it fires.
    clock = FixedClock(FRIDAY_EVENING)
    app = sla_app(tmp_path, clock)
    deliver(inbox(app), make_message(), "a", at=FRIDAY_EVENING)
    run_once(app)
    case = case_of(app)
    assert case.preliminary_due == kyiv(30, 18)
    assert case.detailed_due == kyiv(1, 18)
    ack = sent(app, "ack")[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Mon 30 Nov 2026, 18:00 (Europe/Kyiv)" in ack
    for moment in (kyiv(28, 12), kyiv(29, 23, 59), kyiv(30, 15, 44)):
        at(app, clock, moment)
    assert sent(app, "reminder") == [] and sent(app, "escalation") == []
    at(app, clock, kyiv(30, 15, 45))  # 75 % of the 9 working hours
    (reminder,) = sent(app, "reminder")
    assert reminder["To"] == OLGA and reminder["Reply-To"].startswith("support+sup-1.")
    at(app, clock, kyiv(30, 16))  # once only
    assert len(sent(app, "reminder")) == 1
    at(app, clock, kyiv(30, 18))
    (escalation,) = sent(app, "escalation")
    assert escalation["To"] == "head@staff.test" and escalation["Cc"] == OLGA
    body = escalation.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "first answer" in body and "[SUP-1]" in body
    at(app, clock, kyiv(1, 12, 59))
    assert len(sent(app, "escalation")) == 1
    at(app, clock, kyiv(1, 13))  # 4 working hours after the deadline: the supervisor
    assert [m["To"] for m in sent(app, "escalation")].count("boss@staff.test") == 1


def test_answer_before_deadline_cancels_its_escalation(tmp_path: Path) -> None:
    # A relayed answer meets the preliminary deadline: no escalation for it later.
    app, clock = opened_monday(tmp_path)
    notification = sent(app, "manager_new_case")[0]
    deliver(inbox(app), staff_reply(notification, "We are on it."), "r", at=kyiv(30, 11))
    at(app, clock, kyiv(30, 11))
    at(app, clock, kyiv(1, 11))  # past the preliminary deadline, before the detailed one
    assert sent(app, "escalation") == []
    with app.db.session() as session:
        results = {j.key.split(":")[0] + ":" + j.detail["deadline"]: j.status
                   for j in session.scalars(select(Job).where(Job.kind.like("sla.%")))}
    assert results["sla.escalation:preliminary"] == "cancelled"
    assert results["sla.escalation:detailed"] == "pending"


def test_wait_pauses_and_customer_reply_resumes(tmp_path: Path) -> None:
    # #wait stops the clock (no reminders); the customer's answer resumes it with the time left.
    app, clock = opened_monday(tmp_path)
    notification = sent(app, "manager_new_case")[0]
    deliver(inbox(app), staff_reply(notification, "#wait\nWhich printer model is it?"), "w",
            at=kyiv(30, 12))
    at(app, clock, kyiv(30, 12))  # 2 of 9 working hours used; 7 left for the... detailed too
    case = case_of(app)
    assert case.status == "waiting" and case.paused_at == kyiv(30, 12)
    at(app, clock, kyiv(2, 9))  # days later: nothing fires while paused
    assert sent(app, "reminder") == [] and sent(app, "escalation") == []
    deliver(inbox(app), make_message(subject="Re: Printer on fire [SUP-1]", body="HP 1020",
                                     message_id="<m2@customer.test>"), "m2", at=kyiv(2, 10))
    at(app, clock, kyiv(2, 10))
    case = case_of(app)
    assert case.status == "open" and case.paused_at is None
    # Detailed: due Tue 1 Dec 10:00 originally; paused Mon 12:00 with 2 working days - 2 h left
    # (9 + 9 - 2 = 16 h); resumed Wed 10:00 → Thu 17:00.
    assert case.detailed_due == kyiv(3, 17)
    with app.db.session() as session:
        kinds = [e.kind for e in session.scalars(select(Event).order_by(Event.id))]
    assert "sla_paused" in kinds and "sla_resumed" in kinds


def test_reopen_restarts_detailed_clock(tmp_path: Path) -> None:
    # A customer writing to a closed case reopens it with a new detailed deadline from now.
    app, clock = opened_monday(tmp_path)
    with app.db.transaction() as session:
        case = session.scalar(select(Case))
        assert case is not None
        case.status = "closed"
    deliver(inbox(app), make_message(subject="Re: [SUP-1]", message_id="<m3@customer.test>"),
            "b", at=kyiv(2, 10))
    at(app, clock, kyiv(2, 10))
    case = case_of(app)
    assert case.status == "open" and case.detailed_due == kyiv(4, 10)


def test_jobs_fire_once_across_restarts_and_concurrent_daemons(tmp_path: Path) -> None:
    # Two apps (two daemons) on one database ticking at once send one reminder between them.
    app, clock = opened_monday(tmp_path)
    clock.set(kyiv(30, 17))
    other = App.build(app.config, clock=clock)  # a second daemon / a restarted one
    threads = [threading.Thread(target=a.tick) for a in (app, other, app, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run_once(app)
    assert len(sent(app, "reminder")) == 1


def test_24x7_level_deadlines_in_wall_time(tmp_path: Path) -> None:
    # An extended (24x7) customer's Saturday-night mail is due 24 h later, Sunday night.
    saturday = datetime(2026, 11, 28, 23, 0, tzinfo=timezone.utc)
    clock = FixedClock(saturday)
    app = sla_app(tmp_path, clock,
                  service_levels={"extended": {"calendar": "24x7", "timezone": "UTC"}},
                  organizations=[{"name": "Acme", "domains": ["customer.test"],
                                  "service_level": "extended"}])
    deliver(inbox(app), make_message(), "a", at=saturday)
    run_once(app)
    case = case_of(app)
    assert case.service_level == "extended" and case.organization == "Acme"
    assert case.preliminary_due == datetime(2026, 11, 29, 23, 0, tzinfo=timezone.utc)


def test_report_sla_counts_on_time_late_and_pending(tmp_path: Path) -> None:
    # The report sorts each deadline into on time / late / pending, per level and manager.
    import json

    import tomli_w
    from click.testing import CliRunner

    from factories import config_data
    from mailbot.cli import cli

    monday = kyiv(30, 10)
    clock = FixedClock(monday)
    app = sla_app(tmp_path, clock)
    for n in range(3):
        deliver(inbox(app), make_message(sender=f"c{n}@customer.test",
                                         message_id=f"<q{n}@c>"), f"{n}", at=monday)
    run_once(app)
    with app.db.transaction() as session:
        cases = list(session.scalars(select(Case).order_by(Case.number)))
        cases[0].first_response_at = kyiv(30, 12)  # on time, 2 working hours
        cases[1].first_response_at = kyiv(1, 12)  # late
    path = tmp_path / "cli.toml"
    data = config_data(tmp_path, managers=[{"email": OLGA}],
                       security={"secret_file": str(tmp_path / "secret")})
    path.write_text(tomli_w.dumps(data))
    result = CliRunner().invoke(cli, ["--config", str(path), "report", "sla", "--json",
                                      "--now", kyiv(2, 12).isoformat()])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (level,) = report["service_level"]
    assert (level["name"], level["cases"]) == ("standard", 3)
    assert {k: level["preliminary"][k] for k in ("on_time", "late", "pending")} == {
        "on_time": 1, "late": 2, "pending": 0}
    assert level["preliminary"]["median_hours"] == 6.5  # 2 h and 11 h of working time
    assert [row["name"] for row in report["manager"]] == [OLGA]
    text = CliRunner().invoke(cli, ["--config", str(path), "report", "sla"]).output
    assert "By service level:" in text and "standard" in text and OLGA in text
