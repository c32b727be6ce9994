"""Holding a case to its service level: plan reminders and escalations, pause and resume.

Deadlines are computed in the level's business calendar (``schedule.calendar``),
stored on the case, and turned into job rows:

- ``sla.reminder``   to the manager at ``reminder_at`` (75 %) of the window,
- ``sla.escalation`` at the deadline, to ``[escalation] address`` and the manager,
- ``sla.supervisor`` ``supervisor_after`` (working time) later, to the supervisor,

for the preliminary answer and for the detailed one. A job's key names the
deadline it serves, so each fires at most once per case and deadline, across
restarts and daemons; when a deadline moves (``#wait`` then a customer reply,
``#reopen``) the old jobs are cancelled and new ones planned.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.db.models import Case, Job
from mailbot.schedule.calendar import Duration, parse_duration
from mailbot.schedule.deadlines import Deadlines
from mailbot.store.cases import add_event

SLA_KINDS = ("sla.reminder", "sla.escalation", "sla.supervisor")
DEADLINES = ("preliminary", "detailed")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_key(case: Case, kind: str, which: str, due: datetime) -> str:
    return f"{kind}:{case.id}:{which}:{due.isoformat()}"


def put_job(session: Session, *, case: Case | None, kind: str, key: str, due_at: datetime,
            now: datetime, detail: dict[str, object], fresh: bool = False) -> Job | None:
    """Schedule a job unless that exact job exists; a cancelled twin is revived, a done one
    is left alone (it already happened for this very deadline). ``fresh``: the case was
    opened in this transaction, so it has no jobs yet and the lookup is skipped."""
    job = None if fresh else session.scalar(select(Job).where(Job.key == key))
    if job is None:
        job = Job(case_id=case.id if case else None, kind=kind, key=key, due_at=due_at,
                  status="pending", detail=detail, created_at=now)
        session.add(job)
        return job
    if job.status == "cancelled":
        job.status, job.due_at, job.result, job.detail = "pending", due_at, None, detail
        return job
    return None


def cancel_jobs(session: Session, case: Case, kinds: tuple[str, ...], reason: str,
                now: datetime) -> int:
    result = session.execute(
        update(Job).where(Job.case_id == case.id, Job.kind.in_(kinds), Job.status == "pending")
        .values(status="cancelled", result=reason, done_at=now)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def plan(session: Session, config: Config, deadlines: Deadlines, case: Case, *,
         start: datetime, now: datetime, fresh: bool = False) -> None:
    """Replace the case's pending SLA jobs with ones for its current deadlines.

    ``start`` is when the current windows began (the mail's arrival, a resume, a
    reopen): the reminder falls at ``reminder_at`` of the working time from there.
    """
    if not fresh:
        cancel_jobs(session, case, SLA_KINDS, "deadlines re-planned", now)
    if case.status in ("closed", "waiting"):
        return
    calendar = deadlines.calendar(case.service_level)
    escalation = config.escalation
    for which, due, met in (("preliminary", case.preliminary_due, case.first_response_at),
                            ("detailed", case.detailed_due, case.detailed_at)):
        if due is None or met is not None:
            continue
        window = calendar.working_time_between(start, due)
        minutes = int(window.total_seconds() // 60 * escalation.reminder_at)
        remind_at = calendar.add(start, Duration(minutes=minutes)) if minutes else None
        detail = {"deadline": which, "due": due.isoformat()}
        if remind_at is not None and remind_at < due:
            put_job(session, case=case, kind="sla.reminder",
                    key=job_key(case, "sla.reminder", which, due), due_at=remind_at, now=now,
                    detail=detail, fresh=fresh)
        put_job(session, case=case, kind="sla.escalation",
                key=job_key(case, "sla.escalation", which, due), due_at=due, now=now,
                detail=detail, fresh=fresh)
        if escalation.supervisor:
            later = calendar.add(due, parse_duration(escalation.supervisor_after))
            put_job(session, case=case, kind="sla.supervisor",
                    key=job_key(case, "sla.supervisor", which, due), due_at=later, now=now,
                    detail=detail, fresh=fresh)


def pause(session: Session, case: Case, *, actor: str, now: datetime,
          message_pk: int | None = None) -> None:
    """``#wait``: the clock stops until the customer answers."""
    if case.paused_at is not None:
        return
    case.paused_at = now
    cancel_jobs(session, case, SLA_KINDS, "waiting for the customer", now)
    add_event(session, case, "sla_paused", actor=actor, at=now, message_pk=message_pk,
              preliminary_due=_iso(case.preliminary_due), detailed_due=_iso(case.detailed_due))


def resume(session: Session, config: Config, deadlines: Deadlines, case: Case, *, actor: str,
           now: datetime, message_pk: int | None = None) -> None:
    """A customer reply restarts the clock: what was left of each window is left still."""
    if case.paused_at is None:
        return
    calendar = deadlines.calendar(case.service_level)
    paused_at = case.paused_at
    for attribute in ("preliminary_due", "detailed_due"):
        due = getattr(case, attribute)
        if due is not None:
            remaining = calendar.working_time_between(paused_at, due)
            setattr(case, attribute,
                    calendar.add(now, Duration(minutes=int(remaining.total_seconds() // 60))))
    case.paused_at = None
    if case.status == "waiting":
        case.status = "open"
    add_event(session, case, "sla_resumed", actor=actor, at=now, message_pk=message_pk,
              paused_at=paused_at.isoformat(), preliminary_due=_iso(case.preliminary_due),
              detailed_due=_iso(case.detailed_due))
    plan(session, config, deadlines, case, start=now, now=now)


def restart_detailed(session: Session, config: Config, deadlines: Deadlines, case: Case, *,
                     actor: str, now: datetime, message_pk: int | None = None) -> None:
    """A reopened case owes a new detailed answer, measured from now."""
    level = config.service_levels[case.service_level]
    case.detailed_due = deadlines.calendar(case.service_level).add(
        now, parse_duration(level.detailed))
    case.detailed_at = None
    case.paused_at = None
    add_event(session, case, "sla_detailed_restarted", actor=actor, at=now,
              message_pk=message_pk, detailed_due=_iso(case.detailed_due))
    plan(session, config, deadlines, case, start=now, now=now)
