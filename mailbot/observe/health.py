"""``/healthz``: is this daemon doing its job right now, and if not, why not.

Two things make it fail, each named in the answer so the page an operator gets says
what to fix: the outbox is stuck (its oldest unsent row is older than ``[smtp]
stuck_warning_after``, the same threshold as the log warning), or a mailbox has been
unreachable over IMAP for longer than ``[metrics] imap_unreachable_after``. A
database that cannot be read fails it too. A quiet mailbox or an empty outbox is
healthy: the check measures failure, not traffic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mailbot.config import Config, parse_interval
from mailbot.db.session import Database
from mailbot.observe.reach import Reachability
from mailbot.outbox.worker import outbox_health


@dataclass(frozen=True)
class Health:
    ok: bool
    reasons: list[str] = field(default_factory=list)
    outbox_depth: int | None = None
    outbox_oldest_s: float | None = None
    mailboxes: dict[str, str] = field(default_factory=dict)  # name → "up" | "down since …"

    def as_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "failing", "reasons": self.reasons,
                "outbox": {"depth": self.outbox_depth, "oldest_age_s": self.outbox_oldest_s},
                "mailboxes": self.mailboxes}


def check_health(config: Config, db: Database, now: datetime, reach: Reachability) -> Health:
    """The verdict at ``now``: one cheap outbox query plus the watchers' reports."""
    reasons: list[str] = []
    depth: int | None = None
    oldest: timedelta | None = None
    try:
        depth, oldest = outbox_health(db, now)
    except Exception as exc:  # a broken database is exactly what /healthz is for
        reasons.append(f"database: cannot read the outbox: {type(exc).__name__}: {exc}")
    stuck_after = parse_interval(config.smtp.stuck_warning_after)
    if depth and oldest is not None and oldest > stuck_after:
        reasons.append(f"outbox stuck: {depth} mail(s) waiting, the oldest for {_span(oldest)} "
                       f"(longer than [smtp] stuck_warning_after = "
                       f"{config.smtp.stuck_warning_after}); SMTP {config.smtp.host}:"
                       f"{config.smtp.port} is not taking mail")
    limit = config.metrics.imap_unreachable_td
    for down in reach.unreachable(now, limit):
        reasons.append(f"imap unreachable: mailbox {down.mailbox} failing for "
                       f"{_span(now - down.since)} (longer than [metrics] imap_unreachable_after "
                       f"= {config.metrics.imap_unreachable_after}): {down.error}")
    mailboxes = {r.mailbox: "up" if r.up else f"down since {r.since.isoformat()}: {r.error}"
                 for r in reach.snapshot()}
    return Health(not reasons, reasons, depth,
                  round(oldest.total_seconds(), 1) if oldest is not None else None, mailboxes)


def _span(delta: timedelta) -> str:
    return str(timedelta(seconds=int(delta.total_seconds())))
