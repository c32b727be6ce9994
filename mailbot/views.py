"""What ``cases list`` and ``cases show`` print: rows → plain data → text or JSON.

Listings become a :class:`Table`, drawn by the one helper :func:`render_table`: rich on a
terminal, plain aligned columns when piped (stable for scripts and tests).

The JSON field names are part of the contract scripts rely on (DESIGN.md):
``id, token, subject, status, customer, manager, service_level, opened_at,
preliminary_due, detailed_due, first_response_at, messages``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mailbot.db.models import Attachment, Case, Event, Message, Outbox, Participant
from mailbot.db.session import Database


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


def _summary(case: Case, messages: int) -> dict[str, Any]:
    return {
        "id": case.number,
        "token": case.token,
        "subject": case.subject,
        "status": case.status,
        "customer": case.customer_email,
        "registered": case.registered,
        "manager": case.manager_email,
        "service_level": case.service_level,
        "opened_at": _iso(case.opened_at),
        "preliminary_due": _iso(case.preliminary_due),
        "detailed_due": _iso(case.detailed_due),
        "acknowledged_at": _iso(case.acknowledged_at),
        "first_response_at": _iso(case.first_response_at),
        "timezone": case.timezone,
        "timezone_source": case.timezone_source,
        "organization": case.organization,
        "messages": messages,
    }


def list_cases(db: Database, status: str | None = None) -> list[dict[str, Any]]:
    with db.session() as session:
        counts = (select(Message.case_id, func.count(Message.id).label("n"))
                  .group_by(Message.case_id).subquery())
        query = (select(Case, func.coalesce(counts.c.n, 0))
                 .outerjoin(counts, counts.c.case_id == Case.id)
                 .order_by(Case.number.desc()))
        if status:
            query = query.where(Case.status == status)
        return [_summary(case, int(n)) for case, n in session.execute(query)]


def find_case(session: Session, ident: str, prefix: str) -> Case | None:
    match = re.fullmatch(rf"\[?\s*(?:{re.escape(prefix)}-)?(\d+)\s*\]?", ident.strip(), re.I)
    if not match:
        return None
    return session.scalar(select(Case).where(Case.number == int(match.group(1))))


def show_case(db: Database, ident: str, prefix: str) -> dict[str, Any] | None:
    with db.session() as session:
        case = find_case(session, ident, prefix)
        if case is None:
            return None
        messages = list(session.scalars(
            select(Message).where(Message.case_id == case.id).order_by(Message.received_at,
                                                                        Message.id)))
        attachments: dict[int, list[Attachment]] = {}
        for attachment in session.scalars(select(Attachment).where(
                Attachment.message_pk.in_([m.id for m in messages]))):
            attachments.setdefault(attachment.message_pk, []).append(attachment)
        detail = _summary(case, len(messages))
        detail["participants"] = [
            {"email": p.email, "name": p.name, "role": p.role}
            for p in session.scalars(select(Participant).where(Participant.case_id == case.id)
                                     .order_by(Participant.id))
        ]
        detail["messages"] = [
            {"direction": m.direction, "message_id": m.message_id, "from": m.from_email,
             "to": m.to_addrs, "cc": m.cc_addrs, "subject": m.subject,
             "classification": m.classification, "received_at": _iso(m.received_at),
             "body": m.body_text,
             "attachments": [{"filename": a.filename, "content_type": a.content_type,
                              "size": a.size, "sha256": a.sha256}
                             for a in attachments.get(m.id, [])]}
            for m in messages
        ]
        detail["events"] = [
            {"at": _iso(e.at), "kind": e.kind, "actor": e.actor, "detail": e.detail}
            for e in session.scalars(select(Event).where(Event.case_id == case.id)
                                     .order_by(Event.id))
        ]
        detail["outbox"] = [
            {"kind": o.kind, "status": o.status, "message_id": o.message_id, "to": o.to_addrs,
             "attempts": o.attempts, "last_error": o.last_error, "sent_at": _iso(o.sent_at)}
            for o in session.scalars(select(Outbox).where(Outbox.case_id == case.id)
                                     .order_by(Outbox.id))
        ]
        return detail


def text_table(lines: Sequence[Sequence[str]], right: Collection[int] = ()) -> str:
    """Rows (the first is the header) as columns two spaces apart, ``right`` ones right-aligned.

    This plain form is what scripts and tests see when the output is piped: stable, no colour,
    no box drawing, no width-dependent wrapping.
    """
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                               for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
                     for line in lines)


@dataclass(frozen=True)
class Table:
    """A listing before it is drawn: plain text when piped, a rich table on a terminal.

    ``str(table)`` is the plain form, so a caller that only echoes it keeps working. ``right``
    holds the indexes of numeric columns; ``empty`` is what an empty listing says instead.
    """

    header: tuple[str, ...]
    rows: list[tuple[str, ...]]
    empty: str = "nothing to show"
    title: str | None = None
    right: frozenset[int] = frozenset()

    def __str__(self) -> str:
        return render_table(self)


def render_table(table: Table, width: int | None = None) -> str:
    """The table as text: plain (``width`` None) or drawn by rich for a terminal ``width`` wide.

    The terminal form is rendered into a string with colour codes so the command still
    prints through ``click.echo`` (and tests can render it at a fixed width).
    """
    if width is None:
        body = table.empty if not table.rows else text_table([table.header, *table.rows],
                                                               table.right)
        return f"{table.title}:\n{_indent(body)}" if table.title else body
    from io import StringIO

    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    buffer = StringIO()
    console = Console(file=buffer, width=width, force_terminal=True, highlight=False,
                      soft_wrap=False)
    if not table.rows:
        if table.title:
            console.print(f"[bold]{_markup_escape(table.title)}[/bold]")
        console.print(table.empty, markup=False)
        return buffer.getvalue().rstrip("\n")
    drawn = RichTable(title=table.title, title_justify="left", title_style="bold",
                      box=box.SIMPLE_HEAD, header_style="bold", show_edge=False)
    for index, name in enumerate(table.header):
        drawn.add_column(name, justify="right" if index in table.right else "left",
                         overflow="fold")
    for row in table.rows:
        drawn.add_row(*(Text(cell) for cell in row))
    console.print(drawn)
    return buffer.getvalue().rstrip("\n")


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())


def _markup_escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _short(value: str | None, width: int) -> str:
    value = value or ""
    return value if len(value) <= width else value[: width - 1] + "…"


def cases_table(rows: list[dict[str, Any]]) -> Table:
    header = ("CASE", "STATUS", "CUSTOMER", "REGISTERED", "SUBJECT", "OPENED (UTC)",
              "PRELIMINARY DUE (UTC)")
    lines = []
    for row in rows:
        lines.append((row["token"], row["status"], _short(row["customer"], 30),
                      "yes" if row["registered"] else "no",
                      _short(row["subject"], 40), (row["opened_at"] or "")[:16].replace("T", " "),
                      (row["preliminary_due"] or "")[:16].replace("T", " ")))
    return Table(header, lines, empty="no cases")


def case_text(detail: dict[str, Any]) -> str:
    out = [
        f"{detail['token']}  {detail['subject']}",
        f"  status {detail['status']} · level {detail['service_level']} · "
        f"customer {detail['customer']}{'' if detail['registered'] else ' (unregistered)'} · "
        f"manager {detail['manager'] or '-'}",
        f"  opened {detail['opened_at']} · preliminary due {detail['preliminary_due']} · "
        f"detailed due {detail['detailed_due']}",
        f"  customer's time zone {detail['timezone']} (from: {detail['timezone_source']})"
        + (f" · organization {detail['organization']}" if detail["organization"] else ""),
        "",
        "Participants:",
        *(f"  {p['role']:<9} {p['name'] + ' ' if p['name'] else ''}<{p['email']}>"
          for p in detail["participants"]),
        "",
        "Conversation:",
    ]
    for message in detail["messages"]:
        arrow = "←" if message["direction"] == "in" else "→"
        out.append(f"  {arrow} {message['received_at']}  {message['from']}  "
                   f"[{message['classification']}]  {message['subject']}")
        for line in (message["body"] or "").strip().splitlines()[:12]:
            out.append(f"      {line}")
        for attachment in message["attachments"]:
            out.append(f"      📎 {attachment['filename']} ({attachment['size']} bytes)")
    out += ["", "Events:"]
    for event in detail["events"]:
        reason = event["detail"].get("reason") or event["detail"].get("thread_reason") or ""
        out.append(f"  {event['at']}  {event['kind']:<18} {event['actor']}"
                   + (f"  — {reason}" if reason else ""))
    if detail["outbox"]:
        out += ["", "Outgoing:"]
        for row in detail["outbox"]:
            out.append(f"  {row['kind']:<8} {row['status']:<8} {row['message_id']} → "
                       f"{', '.join(row['to'])}" + (f"  ({row['last_error']})"
                                                    if row["last_error"] else ""))
    return "\n".join(out)


def list_jobs(db: Database, config: Any) -> list[dict[str, Any]]:
    """Pending scheduled jobs with their due time in UTC and where they land locally."""
    from zoneinfo import ZoneInfo

    from mailbot.db.models import Job

    rows = []
    with db.session() as session:
        for job, case in session.execute(
                select(Job, Case).outerjoin(Case, Case.id == Job.case_id)
                .where(Job.status == "pending").order_by(Job.due_at, Job.id)):
            zone = job.detail.get("timezone")
            if not zone:
                manager = config.find_manager(case.manager_email or "") if case else None
                zone = manager.timezone if manager else (case.timezone if case else "UTC")
            local = job.due_at.astimezone(ZoneInfo(zone))
            rows.append({
                "case": case.token if case else None,
                "kind": job.kind,
                "deadline": job.detail.get("deadline"),
                "recipient": job.detail.get("manager"),
                "due_at": _iso(job.due_at),
                "local_due": local.isoformat(timespec="minutes"),
                "timezone": zone,
            })
    return rows


def jobs_table(rows: list[dict[str, Any]]) -> Table:
    header = ("DUE (UTC)", "LOCAL", "ZONE", "KIND", "CASE")
    lines = [
        ((r["due_at"] or "")[:16].replace("T", " "), r["local_due"][:16].replace("T", " "),
         r["timezone"], r["kind"] + (f" ({r['deadline']})" if r["deadline"] else ""),
         r["case"] or r["recipient"] or "-")
        for r in rows]
    return Table(header, lines, empty="no pending jobs")
