"""Quarantine: mail mailbot could not process, kept raw with the reason, listed and retried.

A message lands here when it cannot be parsed, is over ``storage.max_message_size``,
or made a stage raise. Its exact bytes are in the blob store and it was moved to
the mailbox's quarantine folder, so nothing is lost and nothing blocks the mail
after it. After a fix (new code, changed config), ``mailbot quarantine retry ID``
runs the stored bytes through the whole pipeline again: on success the row is
marked ``retried`` with what became of it; on failure it stays ``held`` with the
new reason. The daemon itself never retries (a poison message would loop).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select

from mailbot.backfill import is_import_folder
from mailbot.db.models import Quarantine
from mailbot.errors import MailbotError
from mailbot.pipeline import Delivery, Outcome, PipelineContext, parse_raw, process
from mailbot.db.session import Database
from mailbot.views import Table


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def list_quarantine(db: Database, status: str | None = None) -> list[dict[str, Any]]:
    """Rows for ``quarantine list``, newest first."""
    with db.session() as session:
        query = select(Quarantine).order_by(Quarantine.id.desc())
        if status:
            query = query.where(Quarantine.status == status)
        return [
            {"id": row.id, "status": row.status, "mailbox": row.mailbox, "folder": row.folder,
             "uid": row.uid, "size": row.size, "reason": row.reason,
             "created_at": _iso(row.created_at), "received_at": _iso(row.received_at),
             "moved_to": row.moved_to, "retries": row.retries or 0,
             "result": row.result, "raw_sha256": row.raw_sha256}
            for row in session.scalars(query)
        ]


def quarantine_table(rows: list[dict[str, Any]]) -> Table:
    header = ("ID", "STATUS", "MAILBOX", "SIZE", "QUARANTINED (UTC)", "REASON")
    lines = []
    for row in rows:
        reason = " ".join(str(row["reason"]).split())
        if row["status"] == "retried" and row["result"]:
            reason = f"→ {row['result']} (was: {reason})"
        lines.append((str(row["id"]), row["status"], row["mailbox"], str(row["size"]),
                      (row["created_at"] or "")[:16].replace("T", " "),
                      reason if len(reason) <= 90 else reason[:89] + "…"))
    return Table(header, lines, empty="quarantine is empty", right=frozenset({0, 3}))


@dataclass(frozen=True)
class RetryResult:
    id: int
    outcome: Outcome

    @property
    def ok(self) -> bool:
        return self.outcome.status != "quarantined"


def retry(ctx: PipelineContext, db: Database, quarantine_id: int) -> RetryResult:
    """Re-run one quarantined message with the current code and config.

    The message keeps the mailbox's original time (its deadlines do not move) and is
    recorded without IMAP coordinates: it now lives in the quarantine folder, and
    its UID in the watched folder is gone or already behind the checkpoint.
    """
    with db.transaction() as session:
        row = session.get(Quarantine, quarantine_id)
        if row is None:
            raise MailbotError(f"no quarantined message {quarantine_id} "
                               "(see `mailbot quarantine list`)")
        if row.status != "held":
            raise MailbotError(f"quarantined message {quarantine_id} was already retried "
                               f"successfully ({row.result or row.status})")
        try:
            raw = ctx.blobs.get_raw(row.raw_sha256)
        except OSError as exc:
            raise MailbotError(f"raw bytes of quarantined message {quarantine_id} are missing "
                               f"from the storage: {exc}") from None
        delivery = Delivery(row.mailbox, row.folder, None, None, row.received_at)
        if is_import_folder(row.folder):
            ctx = replace(ctx, historic=True)  # imported history stays history: nothing sent
        parsed = parse_raw(raw, delivery, ctx.config)
        outcome = process(ctx, session, raw, parsed, delivery)
        now = ctx.clock.now()
        row.retries = (row.retries or 0) + 1
        row.updated_at = now
        if outcome.status == "quarantined":
            row.reason = outcome.reason[:2000]
        else:
            row.status = "retried"
            row.result = (f"{outcome.status} {outcome.case_token or ''}".strip()
                          + (f" ({outcome.reason})" if outcome.reason else ""))[:2000]
    return RetryResult(quarantine_id, outcome)
