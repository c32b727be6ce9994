"""The same pipeline on PostgreSQL: cases, acks, the manager loop and the scheduler."""

from __future__ import annotations

import email
from datetime import datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from factories import deliver, make_app, make_config, make_message
from mailbot.clock import FixedClock
from mailbot.daemon import run_once
from mailbot.db.models import Case, Job, Outbox

KYIV = ZoneInfo("Europe/Kyiv")


def test_pipeline_and_scheduler_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    # Open, acknowledge, notify, relay and fire SLA/follow-up jobs with PostgreSQL as the store.
    (tmp_path / "secret").write_text("p" * 32)
    clock = FixedClock(datetime(2026, 11, 23, 20, 0, tzinfo=KYIV))
    app = make_app(make_config(tmp_path, database={"url": pg_url},
                               managers=[{"email": "olga@staff.test"}],
                               security={"secret_file": str(tmp_path / "secret")}), clock)
    inbox = Path(app.config.mailboxes[0].path or "")
    for n in range(3):
        deliver(inbox, make_message(sender=f"c{n}@customer.test", message_id=f"<p{n}@c>"),
                f"{n}", at=clock.now())
    run_once(app)
    run_once(app)  # idempotent on PostgreSQL too
    with app.db.session() as session:
        assert list(session.scalars(select(Case.number).order_by(Case.number))) == [1, 2, 3]
        assert session.scalar(select(func.count()).select_from(Outbox)) == 6  # acks + notices
    sent = [email.message_from_bytes(p.read_bytes(), policy=default)
            for p in Path(app.config.smtp.directory or "").glob("*.eml")]
    notification = next(m for m in sent if m["X-Mailbot-Kind"] == "manager_new_case"
                        and "[SUP-1]" in str(m["Subject"]))
    reply = EmailMessage()
    reply["From"] = "olga@staff.test"
    reply["To"] = notification["Reply-To"]
    reply["Subject"] = "Re: x"
    reply["Message-ID"] = "<pg-reply@staff.test>"
    reply["In-Reply-To"] = notification["Message-ID"]
    reply.set_content("Done.")
    deliver(inbox, bytes(reply), "r", at=clock.now())
    run_once(app)
    clock.set(datetime(2026, 11, 25, 12, 0, tzinfo=KYIV))
    report = run_once(app)
    assert any(key.startswith("followup:") for key in report.ticked.fired)
    assert any(key.startswith("sla.escalation:") for key in report.ticked.fired)
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Job)
                              .where(Job.status == "pending", Job.due_at <= clock.now())) == 0
    app.db.dispose()
