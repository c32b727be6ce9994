"""Overnight follow-ups for customers and morning digests for managers, as job rows.

Every customer message (re)plans one follow-up for the case — several messages
before the same morning merge into that one job — due at ``[followup]
local_time`` of the customer's next working morning in the customer's zone
(``schedule.followup``). When it fires it tells the customer what happened on
the case since they last wrote; it is dropped if the case was closed or the
detailed answer already went out.

Managers get the mirror image: one digest per manager and morning, in their own
zone, listing the cases that came in or changed since their previous digest.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailbot.config import Config, ManagerConfig
from mailbot.db.models import Case, Event, Job, Message, Outbox
from mailbot.outbox.contexts import case_base
from mailbot.outbox.queue import enqueue
from mailbot.outbox.render import format_local
from mailbot.schedule.deadlines import Deadlines
from mailbot.schedule.followup import followup_due
from mailbot.schedule.sla import cancel_jobs, put_job
from mailbot.store.cases import add_event

# What a customer hears about in the follow-up, and how it is said.
_UPDATES = {
    "relay_queued": "we answered you",
    "detailed_answer": "you received our detailed answer",
    "waiting_for_customer": "we asked you a question and are waiting for your answer",
    "closed": "the case was closed",
    "reopened": "the case was reopened",
    "assigned": "the case was handed to a colleague",
}


def plan_followup(session: Session, config: Config, deadlines: Deadlines, case: Case,
                  message_at: datetime, now: datetime, fresh: bool = False) -> Job | None:
    """``fresh``: the case opened with this message, so it has no follow-ups to count or merge."""
    if not config.followup.enabled or case.status == "closed":
        return None
    unanswered = 0 if fresh else _followups_since_last_answer(session, case)
    if unanswered >= config.followup.max_unanswered:
        add_event(session, case, "followup_suppressed", actor="mailbot", at=now,
                  reason=f"{unanswered} follow-ups sent since the team last answered "
                  f"([followup] max_unanswered = {config.followup.max_unanswered})")
        return None
    calendar = deadlines.calendar(case.service_level)
    zone = ZoneInfo(case.timezone)
    due = followup_due(message_at, zone, config.followup.time, config.followup.gap,
                       calendar.is_working_day)
    if not fresh:
        cancel_jobs(session, case, ("followup",), "merged into a later follow-up", now)
    job = put_job(session, case=case, kind="followup", key=f"followup:{case.id}:{due.isoformat()}",
                  due_at=due, now=now, detail={"since": message_at.isoformat(),
                                               "timezone": case.timezone}, fresh=fresh)
    if job is not None:
        add_event(session, case, "followup_scheduled", actor="mailbot", at=now,
                  due=due.isoformat(), local_due=format_local(due, case.timezone),
                  timezone=case.timezone, timezone_source=case.timezone_source)
    return job


def _followups_since_last_answer(session: Session, case: Case) -> int:
    last_answer = session.scalar(
        select(func.max(Outbox.created_at)).where(Outbox.case_id == case.id,
                                                  Outbox.kind == "relay"))
    query = select(func.count()).select_from(Outbox).where(Outbox.case_id == case.id,
                                                           Outbox.kind == "followup")
    if last_answer is not None:
        query = query.where(Outbox.created_at > last_answer)
    return int(session.scalar(query) or 0)


def plan_digest(session: Session, config: Config, deadlines: Deadlines,
                manager: ManagerConfig, message_at: datetime, now: datetime) -> Job | None:
    if not config.followup.digest:
        return None
    calendar = deadlines.calendar(config.defaults.service_level)
    due = followup_due(message_at, ZoneInfo(manager.timezone), config.followup.time,
                       timedelta(0), calendar.is_working_day)
    return put_job(session, case=None, kind="digest", key=f"digest:{manager.email}:{due.isoformat()}",
                   due_at=due, now=now, detail={"manager": manager.email,
                                                "timezone": manager.timezone})


def fire_followup(session: Session, config: Config, secret: bytes | None, job: Job,
                  now: datetime) -> str:
    case = session.get(Case, job.case_id) if job.case_id else None
    if case is None:
        return "cancelled: case gone"
    if case.status == "closed":
        return "cancelled: case closed"
    if case.detailed_at is not None and case.detailed_at <= now:
        return "cancelled: detailed answer already sent"
    since = datetime.fromisoformat(str(job.detail.get("since")))
    zone = case.timezone
    known = session.info.get(FOLLOWUP_PREFETCH, {}).get(case.id)
    history = known or _followup_history(session, [case.id]).get(case.id, ([], None))
    updates = [{"at": format_local(at, zone), "summary": _UPDATES[kind]}
               for at, kind in history[0] if at >= since]
    manager = config.find_manager(case.manager_email or "")
    latest_id = history[1]
    context: dict[str, Any] = {
        **case_base(case, config),
        "manager": {"name": manager.name if manager else "", "email": manager.email if manager
                    else ""},
        "last_customer_at": format_local(since, zone),
        "updates": updates,
        "preliminary_due": format_local(case.preliminary_due, zone),
        "detailed_due": format_local(case.detailed_due, zone),
    }
    row = enqueue(session, case=case, kind="followup", cause=job.key, to=[case.customer_email],
                  context=context, now=now, domain=config.smtp.from_address.partition("@")[2],
                  in_reply_to=latest_id, references=[latest_id] if latest_id else [],
                  language=case.language)
    add_event(session, case, "followup_sent", actor="mailbot", at=now, updates=len(updates),
              local_time=format_local(now, zone), message_id=row.message_id if row else None)
    return f"followed up {case.customer_email}"


#: ``session.info`` key: {case id: (updates, latest customer Message-ID)} for a tick's batch.
FOLLOWUP_PREFETCH = "mailbot.followup.prefetch"


def prefetch_followups(session: Session, jobs: list[Job]) -> None:
    """What a batch of due follow-ups will read, in two queries instead of two per job."""
    case_ids = sorted({job.case_id for job in jobs if job.kind == "followup" and job.case_id})
    session.info[FOLLOWUP_PREFETCH] = _followup_history(session, case_ids) if case_ids else {}


def _followup_history(session: Session, case_ids: list[int]
                      ) -> dict[int, tuple[list[tuple[datetime, str]], str | None]]:
    """Per case: its (time, kind) events worth telling the customer, oldest first, and the
    Message-ID of the customer's latest mail (the follow-up answers it)."""
    history: dict[int, tuple[list[tuple[datetime, str]], str | None]] = {
        case_id: ([], None) for case_id in case_ids}
    for case_id, at, kind in session.execute(
            select(Event.case_id, Event.at, Event.kind)
            .where(Event.case_id.in_(case_ids), Event.kind.in_(tuple(_UPDATES)))
            .order_by(Event.id)):
        history[case_id][0].append((at, kind))
    latest: dict[int, tuple[datetime, int, str]] = {}
    for case_id, received_at, pk, message_id in session.execute(
            select(Message.case_id, Message.received_at, Message.id, Message.message_id)
            .where(Message.case_id.in_(case_ids), Message.direction == "in",
                   Message.classification == "customer")):
        if case_id not in latest or (received_at, pk) > latest[case_id][:2]:
            latest[case_id] = (received_at, pk, message_id)
    return {case_id: (events, latest[case_id][2] if case_id in latest else None)
            for case_id, (events, _none) in history.items()}


def fire_digest(session: Session, config: Config, secret: bytes | None, job: Job,
                now: datetime) -> str:
    manager = config.find_manager(str(job.detail.get("manager", "")))
    if manager is None:
        return "cancelled: no such manager any more"
    previous = session.scalar(
        select(Job.due_at).where(Job.kind == "digest", Job.status == "done",
                                 Job.key.like(f"digest:{manager.email}:%"))
        .order_by(Job.due_at.desc()))
    since = previous or now - timedelta(days=1)
    cases = list(session.scalars(
        select(Case).where(Case.manager_email == manager.email, Case.updated_at > since)
        .order_by(Case.number)))
    if not cases:
        return "nothing new"
    lines = [f"{case.token} {case.status:<8} {case.customer_email}: {case.subject}"
             + (f" (first answer due {format_local(case.preliminary_due, manager.timezone)})"
                if case.first_response_at is None and case.preliminary_due else "")
             for case in cases]
    enqueue(session, case=None, kind="digest", cause=job.key, to=[manager.email],
            context={"manager": manager.email, "since": format_local(since, manager.timezone),
                     "lines": lines},
            now=now, domain=config.smtp.from_address.partition("@")[2], language=manager.language)
    return f"digest of {len(cases)} case(s) to {manager.email}"


def render_digest(context: dict[str, Any]) -> tuple[str, str]:
    """The digest, built in code: a list is all it is."""
    lines = context.get("lines", [])
    body = (f"Good morning,\n\n{len(lines)} case(s) came in or changed since "
            f"{context.get('since', '')}:\n\n" + "\n".join(f"  {line}" for line in lines)
            + "\n\nAnswer each case by replying to its own notification.\n")
    return f"Your morning digest: {len(lines)} case(s)", body
