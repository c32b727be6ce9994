"""The outbox worker: claim due rows, render, compose, send, record the result.

Claims are short transactions (a lease in ``claimed_until``), sending happens
outside any transaction, and the result is a second short transaction. A process
killed between the SMTP server's acceptance and that second commit resends the
row after the lease expires — with the same Message-ID, so it is the same mail.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

from sqlalchemy import func, select

from mailbot.clock import Clock
from mailbot.config import Config, parse_interval
from mailbot.db.models import Case, Message, Outbox
from mailbot.db.session import Database
from mailbot.errors import PermanentSendError, TemplateError, TemporarySendError
from mailbot.outbox import ACK_KINDS
from mailbot.outbox.compose import compose
from mailbot.outbox.queue import backoff, claim_due
from mailbot.managers import COMMAND_ERROR_KIND, render_command_error, render_plain
from mailbot.schedule.overnight import render_digest
from mailbot.outbox.notice import NOTICE_KIND, queue_template_notice, render_notice
from mailbot.outbox.render import Rendered, Renderer, TemplateFailure, TemplateUnavailable
from mailbot.send import Sender
from mailbot.store.blobs import BlobStore
from mailbot.store.cases import add_event

log = logging.getLogger("mailbot.outbox")

# Mail that is plain information, built in code so no template edit can break it.
BUILT_IN = {COMMAND_ERROR_KIND: render_command_error, "digest": render_digest,
            "delivery_failure": render_plain}


@dataclass
class FlushReport:
    sent: list[str] = field(default_factory=list)  # Message-IDs
    deferred: int = 0
    failed: int = 0
    sent_kinds: list[str] = field(default_factory=list)  # the kind of each sent mail, for metrics
    smtp_errors: list[str] = field(default_factory=list)  # "temporary" | "permanent", per failure


class OutboxWorker:
    def __init__(self, config: Config, db: Database, blobs: BlobStore, renderer: Renderer,
                 sender: Sender, clock: Clock) -> None:
        self.config = config
        self.db = db
        self.blobs = blobs
        self.renderer = renderer
        self.sender = sender
        self.clock = clock
        self._retry_cap = parse_interval(config.smtp.retry_max_delay)
        self._queued_more = False  # a template notice was queued: flush goes round again
        self._stuck_after = parse_interval(config.smtp.stuck_warning_after)
        self._lease = parse_interval(config.smtp.claim_lease)

    async def flush(self, limit: int = 50) -> FlushReport:
        """Send everything due now; returns when nothing due is left (or all of it failed)."""
        report = FlushReport()
        try:
            while True:
                now = self.clock.now()
                claimed = await asyncio.to_thread(self._claim, now, limit)
                if not claimed:
                    break
                for row_id in claimed:
                    await self._deliver(row_id, report)
                if len(claimed) < limit and not self._queued_more:
                    break
                self._queued_more = False
        finally:
            await self.sender.close()
        return report

    def _claim(self, now: datetime, limit: int) -> list[int]:
        with self.db.transaction() as session:
            return [claimed.id for claimed in claim_due(session, now, limit,
                                                        self._lease)]

    def compose_row(self, row_id: int) -> tuple[Outbox, Case | None, EmailMessage]:
        """Render and compose one outbox row as it will go on the wire.

        Raises ``TemplateError`` when no template can render it.
        """
        with self.db.session() as session:
            row = session.get(Outbox, row_id)
            assert row is not None
            case = session.get(Case, row.case_id) if row.case_id else None
            session.expunge_all()
        rendered = self._render(row)
        message = compose(
            row, rendered,
            from_address=self.config.smtp.from_address,
            from_name=self.config.smtp.from_name,
            token_prefix=self.config.cases.token_prefix,
            case_number=case.number if case else None,
            now=self.clock.now(),
            attachments=[(f["filename"], f["content_type"], self.blobs.get_attachment(f["sha256"],
                                                                                    f["filename"]))
                         for f in row.context.get("attachment_files", [])],
        )
        return row, case, message

    def _render(self, row: Outbox) -> Rendered:
        """Render a row; a template that had to fall back is reported to the admin.

        The admin's notice itself is built in code (notice.py), never from a template.
        """
        if row.kind == NOTICE_KIND:
            return render_notice(row.context)
        if row.kind in BUILT_IN:
            subject, text = BUILT_IN[row.kind](row.context)
            return Rendered(subject, text, None, "built-in")
        try:
            rendered = self.renderer.render(row.kind, row.language, row.context)
        except TemplateUnavailable as exc:
            self._report_template_failures(exc.failures)
            raise
        self._report_template_failures(rendered.failures)
        return rendered

    def _report_template_failures(self, failures: tuple[TemplateFailure, ...]) -> None:
        if not failures or not self.config.templates.admin_address:
            return
        now = self.clock.now()
        with self.db.transaction() as session:
            for failure in failures:
                if queue_template_notice(session, self.config, failure, now) is not None:
                    self._queued_more = True

    async def _deliver(self, row_id: int, report: FlushReport) -> None:
        if await asyncio.to_thread(self._refuse_suppressed, row_id):
            report.failed += 1
            return
        try:
            row, case, message = self.compose_row(row_id)
            await self.sender.send(message, [*row.to_addrs, *row.cc_addrs])
        except PermanentSendError as exc:
            report.failed += 1
            report.smtp_errors.append("permanent")
            await asyncio.to_thread(self._mark_failed, row_id, str(exc))
            return
        except (TemporarySendError, TemplateError) as exc:
            report.deferred += 1
            if isinstance(exc, TemporarySendError):
                report.smtp_errors.append("temporary")
            await asyncio.to_thread(self._mark_deferred, row_id, str(exc))
            return
        raw = bytes(message)
        await asyncio.to_thread(self._mark_sent, row_id, raw, str(message["Subject"]))
        report.sent.append(row.message_id)
        report.sent_kinds.append(row.kind)
        log.info("sent %s kind=%s case=%s", row.message_id, row.kind, case.token if case else "-")

    def _mark_sent(self, row_id: int, raw: bytes, subject: str) -> None:
        now = self.clock.now()
        sha = self.blobs.put_raw(raw)
        with self.db.transaction() as session:
            row = session.get(Outbox, row_id)
            assert row is not None
            row.status, row.sent_at, row.subject, row.claimed_until = "sent", now, subject, None
            row.last_error = None
            case = session.get(Case, row.case_id) if row.case_id else None
            already = session.scalar(
                select(Message.id).where(Message.message_id == row.message_id,
                                         Message.direction == "out")
            )
            if already is None:
                message = Message(
                    case_id=row.case_id, direction="out", classification=row.kind,
                    message_id=row.message_id, content_hash=hashlib.sha256(raw).hexdigest(),
                    raw_sha256=sha, mailbox=row.mailbox, imap_done=True,
                    from_email=self.config.smtp.from_address, from_name=self.config.smtp.from_name,
                    to_addrs=row.to_addrs, cc_addrs=row.cc_addrs, subject=subject,
                    received_at=now, body_text=_body_of(raw), size=len(raw), created_at=now,
                )
                session.add(message)
                session.flush()
                if case is not None:
                    add_event(session, case, f"{row.kind}_sent", actor="mailbot", at=now,
                              message_pk=message.id, message_id=row.message_id,
                              to=row.to_addrs, attempts=row.attempts)
            if case is not None and row.kind in ACK_KINDS and case.acknowledged_at is None:
                case.acknowledged_at = now

    def _mark_deferred(self, row_id: int, error: str) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(Outbox, row_id)
            assert row is not None
            delay = backoff(row.attempts, self._retry_cap)
            delay += timedelta(seconds=random.uniform(0, delay.total_seconds() * 0.2))
            row.status, row.claimed_until = "pending", None
            row.next_attempt_at = now + delay
            row.last_error = error
            waiting = now - row.created_at
            if waiting > self._stuck_after:
                # INFO, not WARNING: the daemon's periodic health line (daemon.py) is the one
                # warning an admin gets while the outbox is stuck, not one per row per retry.
                log.info("outbox: %s (%s) waiting %s, attempt %d: %s", row.message_id, row.kind,
                            str(waiting).split(".")[0], row.attempts, error)
            else:
                log.info("outbox: %s deferred %ss: %s", row.message_id, int(delay.total_seconds()),
                         error)

    def _refuse_suppressed(self, row_id: int) -> bool:
        """Fail a row addressed to an address that bounced hard (``bounces.suppressed``)."""
        from mailbot.bounces import suppressed

        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(Outbox, row_id)
            assert row is not None
            blocked = suppressed(session, [*row.to_addrs, *row.cc_addrs], now)
            if not blocked:
                return False
            error = "; ".join(blocked.values())
            row.status, row.claimed_until, row.last_error = "failed", None, error
            case = session.get(Case, row.case_id) if row.case_id else None
            if case is not None:
                add_event(session, case, "send_suppressed", actor="mailbot", at=now,
                          message_id=row.message_id, mail_kind=row.kind, to=row.to_addrs,
                          reason=error)
        log.warning("outbox: %s (%s) not sent: %s", row.message_id, row.kind, error)
        return True

    def _mark_failed(self, row_id: int, error: str) -> None:
        now = self.clock.now()
        with self.db.transaction() as session:
            row = session.get(Outbox, row_id)
            assert row is not None
            row.status, row.claimed_until, row.last_error = "failed", None, error
            case = session.get(Case, row.case_id) if row.case_id else None
            if case is not None:
                add_event(session, case, "delivery_failed", actor="smtp", at=now,
                          message_id=row.message_id, mail_kind=row.kind, to=row.to_addrs, error=error)
        log.error("outbox: %s (%s) permanently refused: %s", row.message_id, row.kind, error)


def outbox_health(db: Database, now: datetime) -> tuple[int, timedelta | None]:
    """Pending rows and the age of the oldest: what an operator watches."""
    with db.session() as session:
        count, oldest = session.execute(
            select(func.count(Outbox.id), func.min(Outbox.created_at))
            .where(Outbox.status.in_(("pending", "sending")))
        ).one()
    return int(count), (now - oldest) if oldest else None


def _body_of(raw: bytes) -> str:
    message = message_from_bytes(raw, policy=default)
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""  # type: ignore[union-attr]
