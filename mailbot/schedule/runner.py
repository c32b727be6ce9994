"""The scheduler tick: fire every job whose time has come, exactly once.

A due job is selected, acted on (its mail queued in the outbox, its event
written) and marked done in one transaction; on PostgreSQL the row is locked
``FOR UPDATE SKIP LOCKED`` so several daemons never fire the same job, on SQLite
the single writer does the same. The outbox row's unique (case, kind, cause)
with cause = the job's key is a second guard. A job that no longer applies (case
closed, answered, paused, deadline moved) is cancelled with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.db.models import Case, Job, Outbox
from mailbot.db.session import Database
from mailbot.managers import manager_context, signed_headers
from mailbot.outbox.contexts import case_base
from mailbot.outbox.queue import PRECHECKED_CAUSES, enqueue
from mailbot.outbox.render import format_local
from mailbot.schedule.overnight import (FOLLOWUP_PREFETCH, fire_digest, fire_followup,
                                        prefetch_followups)
from mailbot.store.cases import add_event

log = logging.getLogger("mailbot.schedule")

Handler = Callable[[Session, Config, bytes | None, Job, datetime], str]
HANDLERS: dict[str, Handler] = {}


@dataclass
class TickReport:
    fired: list[str] = field(default_factory=list)  # job keys
    cancelled: list[str] = field(default_factory=list)
    first_due: datetime | None = None  # due time of the oldest job fired: the scheduler's lag


def tick(db: Database, config: Config, secret: bytes | None, now: datetime,
         limit: int = 500) -> TickReport:
    report = TickReport()
    while True:
        with db.transaction() as session:
            query = (select(Job).where(Job.status == "pending", Job.due_at <= now)
                     .order_by(Job.due_at, Job.id).limit(limit))
            if db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            jobs = list(session.scalars(query))
            # Held here: the identity map keeps objects only while someone refers to them.
            cases = _preload(session, jobs)  # noqa: F841
            # Without autoflush, each job's rows wait for the commit's single flush (one
            # executemany per table) instead of being flushed before the next lookup.
            marks: list[dict[str, object]] = []
            with session.no_autoflush:
                for job in jobs:
                    handler = HANDLERS.get(job.kind)
                    outcome = handler(session, config, secret, job, now) if handler else \
                        f"cancelled: no handler for {job.kind}"
                    status = "cancelled" if outcome.startswith("cancelled") else "done"
                    marks.append({"id": job.id, "status": status, "result": outcome,
                                  "done_at": now})
                    if status == "cancelled":
                        report.cancelled.append(job.key)
                    else:
                        report.fired.append(job.key)
                        if report.first_due is None:  # jobs come oldest first
                            report.first_due = job.due_at
            if marks:
                # One executemany by primary key, not a unit-of-work UPDATE per job object.
                session.execute(update(Job), marks)
            session.info.pop(PRECHECKED_CAUSES, None)
            session.info.pop(FOLLOWUP_PREFETCH, None)
        if len(jobs) < limit:
            return report


def _preload(session: Session, jobs: list[Job]) -> list[Case]:
    """Load a batch's cases and its outbox duplicates in two queries instead of 2 per job.

    ``session.get(Case, …)`` in the handlers then finds each case in the identity
    map, and ``enqueue`` answers "already queued?" from the set left in ``session.info``.
    """
    case_ids = sorted({job.case_id for job in jobs if job.case_id is not None})
    cases = list(session.scalars(select(Case).where(Case.id.in_(case_ids)))) if case_ids else []
    causes = {job.key for job in jobs}
    present = {(row.case_id, row.kind, row.cause) for row in session.execute(
        select(Outbox.case_id, Outbox.kind, Outbox.cause).where(Outbox.cause.in_(causes))
    )} if causes else set()
    session.info[PRECHECKED_CAUSES] = (causes, present)
    prefetch_followups(session, jobs)
    return cases


def _span(seconds: float) -> str:
    minutes = int(abs(seconds) // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes or not parts:
        parts.append(f"{minutes} min")
    return " ".join(parts)


def _sla(session: Session, config: Config, secret: bytes | None, job: Job, now: datetime) -> str:
    case = session.get(Case, job.case_id) if job.case_id else None
    which = str(job.detail.get("deadline"))
    if case is None:
        return "cancelled: case gone"
    due = case.preliminary_due if which == "preliminary" else case.detailed_due
    met = case.first_response_at if which == "preliminary" else case.detailed_at
    if case.status == "closed":
        return "cancelled: case closed"
    if case.paused_at is not None:
        return "cancelled: waiting for the customer"
    if met is not None:
        return "cancelled: answered"
    if due is None or due.isoformat() != job.detail.get("due"):
        return "cancelled: deadline changed"
    manager = config.find_manager(case.manager_email or "")
    zone = manager.timezone if manager else case.timezone
    context = {
        **case_base(case, config),
        "manager": manager_context(manager) if manager else {"name": "", "email": ""},
        "received_at": format_local(case.opened_at, zone),
    }
    seconds = (due - now).total_seconds()
    if job.kind == "sla.reminder":
        if manager is None:
            return "cancelled: no manager to remind"
        context["deadline"] = {"kind": which, "due": format_local(due, zone),
                               "remaining": _span(seconds)}
        headers = signed_headers(config, secret, case, "reminder")
        context.update(headers.context)
        enqueue(session, case=case, kind="reminder", cause=job.key, to=[manager.email],
                context=context, now=now, domain=config.smtp.from_address.partition("@")[2],
                language=manager.language, message_id=headers.message_id)
        add_event(session, case, "sla_reminder", actor="mailbot", at=now, deadline=which,
                  due=due.isoformat(), to=manager.email)
        return f"reminded {manager.email}"
    context["deadline"] = {"kind": which, "due": format_local(due, zone),
                           "overdue_by": _span(seconds)}
    if job.kind == "sla.escalation":
        to = [config.escalation.address] if config.escalation.address else []
        cc = [manager.email] if manager else []
        if not to:
            to, cc = cc, []
        kind, event = "escalation", "sla_escalated"
    else:
        to = [config.escalation.supervisor] if config.escalation.supervisor else []
        cc = [config.escalation.address] if config.escalation.address else []
        kind, event = "escalation", "sla_escalated_supervisor"
    if not to:
        add_event(session, case, event, actor="mailbot", at=now, deadline=which,
                  due=due.isoformat(), to=[], reason="nobody to escalate to (no [escalation] "
                  "address and no manager)")
        return "escalated (nobody to mail)"
    enqueue(session, case=case, kind=kind, cause=job.key, to=to, cc=cc, context=context, now=now,
            domain=config.smtp.from_address.partition("@")[2], language="en")
    add_event(session, case, event, actor="mailbot", at=now, deadline=which, due=due.isoformat(),
              to=[*to, *cc])
    log.warning("case %s: %s answer overdue since %s; escalated to %s", case.token, which,
                due.isoformat(), ", ".join(to))
    return f"escalated to {', '.join(to)}"


for _kind in ("sla.reminder", "sla.escalation", "sla.supervisor"):
    HANDLERS[_kind] = _sla
HANDLERS["followup"] = fire_followup
HANDLERS["digest"] = fire_digest
