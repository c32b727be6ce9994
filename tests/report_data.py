"""Known cases for the SLA report tests: four weeks of mail through the real pipeline.

Built with the Maildir mailbox and directory sender of ``factories`` and a FixedClock in
Kyiv (8x5, Mon-Fri 09-18). Answers are then written into the cases directly, as the SLA
report test in test_sla.py does. What each case should count as is listed in ``build``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select

import tomli_w

from factories import config_data, deliver, inbox_of, make_app, make_message
from mailbot.config import load_config
from mailbot.clock import FixedClock
from mailbot.daemon import App, run_once
from mailbot.db.models import Case, Outbox

KYIV = ZoneInfo("Europe/Kyiv")
OLGA = "olga@staff.test"
HOSTILE_ORG = '<script>alert("x")</script> & Sons'
# When the report is judged: Monday 21 Dec 2026, 08:00 Kyiv, before that day's opening.
REPORT_NOW = datetime(2026, 12, 21, 8, 0, tzinfo=KYIV)


def kyiv(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=KYIV)


def _open(app: App, clock: FixedClock, n: int, received: datetime, processed: datetime) -> None:
    clock.set(processed)
    deliver(inbox_of(app), make_message(sender=f"c{n}@customer.test",
                                        message_id=f"<r{n}@customer.test>"), f"m{n}",
            at=received)
    run_once(app)


def config_file(tmp_path: Path) -> Path:
    """The config of these cases as a file, for running ``mailbot report sla`` on them."""
    path = tmp_path / "mailbot.toml"
    if not path.exists():
        (tmp_path / "secret").write_text("x" * 32)
        path.write_text(tomli_w.dumps(config_data(
            tmp_path, managers=[{"email": OLGA, "name": "Olga", "timezone": "Europe/Kyiv"}],
            security={"secret_file": str(tmp_path / "secret")})))
    return path


def build(tmp_path: Path) -> App:
    """Four cases in weeks 30 Nov, 7 Dec and 21 Dec (none in the week of 14 Dec).

    SUP-1 (Mon 30 Nov 10:00): acked at once; preliminary after 1 h (on time), detailed after 11
          working hours (on time). Organization: a name full of HTML.
    SUP-2 (Mon 30 Nov 10:00): its ack suppressed (no ack row: not judged); preliminary Tue
          12:00 = 11 working hours (late); detailed never (late by REPORT_NOW).
    SUP-3 (Mon 7 Dec 10:00, processed 10:20): ack 20 working minutes late; nothing answered.
    SUP-4 (Mon 21 Dec 00:30 Kyiv = Sunday 22:30 UTC): acked at once, due 09:05 (on time);
          nothing answered, nothing due yet (pending).
    """
    clock = FixedClock(kyiv(11, 30, 10))
    app = make_app(load_config(str(config_file(tmp_path))), clock)
    _open(app, clock, 1, kyiv(11, 30, 10), kyiv(11, 30, 10))
    _open(app, clock, 2, kyiv(11, 30, 10), kyiv(11, 30, 10))
    _open(app, clock, 3, kyiv(12, 7, 10), kyiv(12, 7, 10, 20))
    _open(app, clock, 4, kyiv(12, 21, 0, 30), kyiv(12, 21, 0, 30))
    with app.db.transaction() as session:
        cases = {c.number: c for c in session.scalars(select(Case))}
        cases[1].first_response_at = kyiv(11, 30, 11)
        cases[1].detailed_at = kyiv(12, 1, 12)
        cases[1].organization = HOSTILE_ORG
        cases[2].first_response_at = kyiv(12, 1, 12)
        cases[2].acknowledged_at = None
        session.execute(delete(Outbox).where(Outbox.case_id == cases[2].id,
                                             Outbox.kind == "ack"))
    return app
