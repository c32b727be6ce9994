"""Overnight follow-ups and manager digests end to end (Maildir harness, injected clock)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import tomli_w
from click.testing import CliRunner
from sqlalchemy import select

from factories import (config_data, deliver, inbox_of, make_app, make_config, make_message,
                       plain_body, sent_mail, staff_reply)
from mailbot.cli import cli
from mailbot.clock import FixedClock
from mailbot.daemon import App, run_once
from mailbot.db.models import Case, Job

KYIV = ZoneInfo("Europe/Kyiv")
OLGA = "olga@staff.test"
UA = "Olena <olena@shop.com.ua>"


def app_for(tmp_path: Path, clock: FixedClock, **over: Any) -> App:
    (tmp_path / "secret").write_text("x" * 32)
    settings: dict[str, Any] = {
        "managers": [{"email": OLGA, "name": "Olga", "timezone": "America/New_York"}],
        "security": {"secret_file": str(tmp_path / "secret")},
        "defaults": {"service_level": "standard", "timezone": "UTC", "language": "en"},
    }
    settings.update(over)
    return make_app(make_config(tmp_path, **settings), clock)


inbox = inbox_of
sent = sent_mail
text = plain_body


def write(app: App, clock: FixedClock, local: datetime, name: str, **kw: Any) -> None:
    clock.set(local)
    deliver(inbox(app), make_message(sender=UA, date=local, **kw), name, at=local)
    run_once(app)


def written_monday_evening(tmp_path: Path) -> tuple[App, FixedClock]:
    """An app whose Kyiv customer wrote on Monday 23 Nov at 20:00 local time."""
    evening = datetime(2026, 11, 23, 20, 0, tzinfo=KYIV)  # a +02:00 Date: header
    clock = FixedClock(evening)
    app = app_for(tmp_path, clock)
    write(app, clock, evening, "a")
    return app, clock


def test_followup_lands_on_the_customers_morning_with_what_happened(tmp_path: Path) -> None:
    # Kyiv customer (inferred from .ua + Date offset) writes Monday 20:00; the manager answers
    # in the night; at 08:30 Kyiv time the customer gets a follow-up naming the answer.
    app, clock = written_monday_evening(tmp_path)
    with app.db.session() as session:
        case = session.scalar(select(Case))
        assert case is not None and (case.timezone, case.timezone_source) == (
            "Europe/Kyiv", "inferred")
        (job,) = session.scalars(select(Job).where(Job.kind == "followup"))
        assert job.due_at == datetime(2026, 11, 24, 8, 30, tzinfo=KYIV)
    notification = sent(app, "manager_new_case")[0]
    clock.set(datetime(2026, 11, 24, 2, 0, tzinfo=KYIV))
    deliver(inbox(app), staff_reply(notification, "The part is ordered."), "r", at=clock.now())
    run_once(app)
    clock.set(datetime(2026, 11, 24, 8, 29, tzinfo=KYIV))
    run_once(app)
    assert sent(app, "followup") == []
    clock.set(datetime(2026, 11, 24, 8, 30, tzinfo=KYIV))
    run_once(app)
    (followup,) = sent(app, "followup")
    assert followup["To"] == "olena@shop.com.ua"
    assert followup["In-Reply-To"] == "<m1@customer.test>"
    body = text(followup)
    assert "we answered you" in body and "Tue 24 Nov 2026, 02:00 (Europe/Kyiv)" in body
    clock.set(datetime(2026, 11, 25, 9, 0, tzinfo=KYIV))
    run_once(app)
    assert len(sent(app, "followup")) == 1  # fired once


def test_several_messages_merge_into_one_followup(tmp_path: Path) -> None:
    # Three evening messages before the same morning give one follow-up, not three.
    clock = FixedClock(datetime(2026, 11, 23, 19, 0, tzinfo=KYIV))
    app = app_for(tmp_path, clock)
    write(app, clock, datetime(2026, 11, 23, 19, 0, tzinfo=KYIV), "a")
    for n, hour in enumerate((20, 22)):
        write(app, clock, datetime(2026, 11, 23, hour, 0, tzinfo=KYIV), f"b{n}",
              subject="Re: Printer on fire [SUP-1]", message_id=f"<more{n}@c>")
    with app.db.session() as session:
        pending = list(session.scalars(select(Job).where(Job.kind == "followup",
                                                         Job.status == "pending")))
    assert len(pending) == 1
    clock.set(datetime(2026, 11, 24, 9, 0, tzinfo=KYIV))
    run_once(app)
    assert len(sent(app, "followup")) == 1


def test_closed_case_gets_no_followup(tmp_path: Path) -> None:
    # A case closed overnight is not followed up in the morning.
    app, clock = written_monday_evening(tmp_path)
    with app.db.transaction() as session:
        case = session.scalar(select(Case))
        assert case is not None
        case.status = "closed"
    clock.set(datetime(2026, 11, 24, 9, 0, tzinfo=KYIV))
    run_once(app)
    assert sent(app, "followup") == []
    with app.db.session() as session:
        (job,) = session.scalars(select(Job).where(Job.kind == "followup"))
        assert (job.status, job.result) == ("cancelled", "cancelled: case closed")


def test_manager_digest_in_manager_zone_and_schedule_list(tmp_path: Path) -> None:
    # The New York manager's digest is due 08:30 New York time; `schedule list` shows both zones.
    app, clock = written_monday_evening(tmp_path)
    path = tmp_path / "cli.toml"
    path.write_text(tomli_w.dumps(config_data(
        tmp_path, managers=[{"email": OLGA, "timezone": "America/New_York"}],
        security={"secret_file": str(tmp_path / "secret")})))
    result = CliRunner().invoke(cli, ["--config", str(path), "schedule", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["kind"]: row for row in json.loads(result.output)}
    assert rows["followup"]["case"] == "[SUP-1]"
    assert rows["followup"]["timezone"] == "Europe/Kyiv"
    assert rows["followup"]["local_due"] == "2026-11-24T08:30+02:00"
    assert rows["followup"]["due_at"] == "2026-11-24T06:30:00Z"
    assert rows["digest"]["timezone"] == "America/New_York"
    assert rows["digest"]["local_due"] == "2026-11-24T08:30-05:00"
    assert "sla.escalation" in rows
    table = CliRunner().invoke(cli, ["--config", str(path), "schedule", "list"]).output
    assert "followup" in table and "Europe/Kyiv" in table
    clock.set(datetime(2026, 11, 24, 8, 30, tzinfo=ZoneInfo("America/New_York")))
    run_once(app)
    (digest,) = sent(app, "digest")
    assert digest["To"] == OLGA and "[SUP-1]" in text(digest)
    shown = CliRunner().invoke(cli, ["--config", str(path), "cases", "show", "SUP-1"]).output
    assert "Europe/Kyiv (from: inferred)" in shown


def test_poll_now_fires_what_is_due_at_that_instant(tmp_path: Path) -> None:
    # `poll --once --now ISO` evaluates the schedule at that instant (a dry run of the morning).
    app, clock = written_monday_evening(tmp_path)
    path = tmp_path / "cli.toml"
    path.write_text(tomli_w.dumps(config_data(
        tmp_path, managers=[{"email": OLGA, "timezone": "America/New_York"}],
        security={"secret_file": str(tmp_path / "secret")})))
    runner = CliRunner()
    early = runner.invoke(cli, ["--config", str(path), "poll", "--once", "--now",
                                "2026-11-24T06:29:00Z"])
    assert early.exit_code == 0 and sent(app, "followup") == []
    due = runner.invoke(cli, ["--config", str(path), "poll", "--once", "--now",
                              datetime(2026, 11, 24, 8, 30, tzinfo=KYIV).astimezone(
                                  timezone.utc).isoformat()])
    assert due.exit_code == 0, due.output
    assert len(sent(app, "followup")) == 1


def test_detailed_answer_already_sent_skips_followup(tmp_path: Path) -> None:
    # When the detailed answer went out overnight, the morning follow-up has nothing to add.
    app, clock = written_monday_evening(tmp_path)
    with app.db.transaction() as session:
        case = session.scalar(select(Case))
        assert case is not None
        case.detailed_at = datetime(2026, 11, 24, 3, 0, tzinfo=KYIV)
    clock.set(datetime(2026, 11, 24, 9, 0, tzinfo=KYIV))
    run_once(app)
    assert sent(app, "followup") == []
    with app.db.session() as session:
        (job,) = session.scalars(select(Job).where(Job.kind == "followup"))
        assert job.result == "cancelled: detailed answer already sent"


def test_robot_answering_every_followup_gets_at_most_max_unanswered(tmp_path: Path) -> None:
    # A customer-side robot that replies to each follow-up without markers gets two, then none.
    app, clock = written_monday_evening(tmp_path)
    for day in range(24, 29):
        clock.set(datetime(2026, 11, day, 8, 45, tzinfo=KYIV))
        run_once(app)
        for n, followup in enumerate(sent(app, "followup")):
            write(app, clock, clock.now(), f"robot-{day}-{n}", subject="Re: [SUP-1] status",
                  message_id=f"<robot-{day}-{n}@c>", In_Reply_To=str(followup["Message-ID"]))
    assert len(sent(app, "followup")) == 2
    with app.db.session() as session:
        from mailbot.db.models import Event

        assert session.scalar(select(Event).where(Event.kind == "followup_suppressed")) is not None
