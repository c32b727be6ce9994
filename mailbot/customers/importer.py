"""``mailbot customers import``: a CSV of customers into the directory, all or nothing.

Every row is checked before anything is written, and every problem of every row
is reported as ``FILE:LINE: column: problem`` — an admin fixing a 2 000-line
export wants the whole list at once, not one error per run. Only a file with no
problem is applied, in one transaction.

Importing is an upsert keyed by the lowercased address: importing the same file
again changes nothing, and a corrected file updates what differs. The file is the
truth for the columns it has — an empty cell clears that setting — while a column
the file does not have leaves stored values alone, and customers the file does not
mention stay in the directory.

Organizations: a name that matches an ``[[organizations]]`` entry (ignoring case)
is stored as that entry's name, so its manager and settings apply; any other name
is accepted as a plain name (it shows on the customer's cases and in reports) and
reported as a note, since a typo would otherwise silently lose the manager.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailbot.config import Config
from mailbot.customers.csvfile import CsvProblem, Row, read_csv
from mailbot.customers.directory import organization_named
from mailbot.db.models import Customer
from mailbot.db.session import Database
from mailbot.errors import MailbotError
from mailbot.language import SUPPORTED
from mailbot.outbox.render import DEFAULT_DIR

#: Settings a row may carry besides its address, as stored on ``Customer``.
SETTINGS: tuple[str, ...] = ("name", "organization", "timezone", "language", "service_level")
MAX_LENGTH = {"name": 200, "organization": 200}
_LOOKUP_CHUNK = 500  # addresses per IN (...) when reading existing rows
_VARIANT_RE = re.compile(r"^[a-z_]+\.([a-z]{2})\.(?:txt|html)\.j2$")


class CustomerImportError(MailbotError):
    """Raised when a customer file has problems; nothing was written.

    ``problems`` holds one ``FILE:LINE: column: problem`` line per problem found.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Entry:
    """A valid row: the address and the settings the file has a column for."""

    line: int
    email: str
    settings: dict[str, str | None]


@dataclass
class ImportResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        verb = "would be " if self.dry_run else ""
        text = (f"{self.added} {verb}added, {self.updated} {verb}updated, "
                f"{self.unchanged} unchanged")
        return f"dry run, nothing written: {text}" if self.dry_run else text


def import_customers(db: Database, config: Config, path: Path, *, now: datetime,
                     dry_run: bool = False, shown: str | None = None) -> ImportResult:
    """Validate ``path`` and upsert its customers; raises ``CustomerImportError``.

    ``shown`` is how the file is named in problems (default: the path as given).
    """
    name = shown or str(path)
    try:
        table = read_csv(path)
    except CsvProblem as exc:
        where = f"{name}:{exc.line}" if exc.line else name
        raise CustomerImportError([f"{where}: {exc.message}"]) from None
    except OSError as exc:
        raise CustomerImportError([f"{name}: cannot read: {exc.strerror or exc}"]) from None
    entries, problems = validate_rows(table.rows, table.columns, config)
    if problems:
        raise CustomerImportError([f"{name}:{line}: {text}" for line, text in problems])
    result = ImportResult(dry_run=dry_run)
    result.notes = _notes(entries, config)
    if dry_run:
        with db.session() as session:
            _apply(session, entries, now, result, write=False)
    else:
        with db.transaction() as session:
            _apply(session, entries, now, result, write=True)
    return result


def validate_rows(rows: Iterable[Row], columns: Sequence[str], config: Config
                  ) -> tuple[list[Entry], list[tuple[int, str]]]:
    """Check every row; returns the entries and ``(line, "column: problem")`` for each problem."""
    languages = known_languages(config)
    levels = {level.lower(): level for level in config.service_levels}
    settings = [column for column in SETTINGS if column in columns]
    entries: list[Entry] = []
    problems: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    for row in rows:
        found: list[str] = []
        if row.extra:
            found.append(f"row: {row.extra} cell(s) more than the header's "
                         f"{len(columns)} columns")
        email = _email(row.cells["email"], found)
        if email is not None:
            if email in first_line:
                found.append(f"email: {email} is already on line {first_line[email]}")
            else:
                first_line[email] = row.line
        values: dict[str, str | None] = {}
        for column in settings:
            values[column] = _setting(column, row.cells[column], config, languages, levels,
                                      found)
        problems.extend((row.line, text) for text in found)
        if not found and email is not None:
            entries.append(Entry(row.line, email, values))
    return entries, problems


def known_languages(config: Config) -> tuple[str, ...]:
    """Languages a customer may be given: the shipped ones, the default, and any an admin
    added templates for (``ack.de.txt.j2``) — a language with no template at all would
    only ever get English mail, which is what leaving the cell empty already says."""
    found = {*SUPPORTED, config.defaults.language}
    for directory in (config.templates.dir, DEFAULT_DIR):
        if Path(directory).is_dir():
            for path in Path(directory).glob("*.j2"):
                match = _VARIANT_RE.match(path.name)
                if match:
                    found.add(match.group(1))
    return tuple(sorted(found))


def _email(value: str, found: list[str]) -> str | None:
    if not value:
        found.append("email: required")
        return None
    try:
        # Syntax only: no DNS, and special-use or single-label domains are allowed — the
        # directory matches senders, and mail arrives from whatever addresses it arrives from.
        checked = validate_email(value, check_deliverability=False, globally_deliverable=False,
                                 test_environment=True)
    except EmailNotValidError as exc:
        found.append(f"email: {value!r}: {exc}")
        return None
    # Mail headers carry the ASCII (punycode) form of a domain; the pipeline lowercases it.
    return (checked.ascii_email or checked.normalized).lower()


def _setting(column: str, value: str, config: Config, languages: Sequence[str],
             levels: dict[str, str], found: list[str]) -> str | None:
    if column == "name":
        if _single_line_problem(column, value, found):
            return ""
        return value
    if not value:
        return None
    if column == "organization":
        if _single_line_problem(column, value, found):
            return None
        organization = organization_named(config, value)
        return organization.name if organization else value
    if column == "timezone":
        if not _is_zone(value):
            found.append(f"timezone: {value!r} is not an IANA time zone (e.g. Europe/Kyiv)")
        return value
    if column == "language":
        code = value.lower()
        if code not in languages:
            found.append(f"language: {value!r} is not one of {', '.join(languages)} "
                         "(add templates for another language first)")
        return code
    if column == "service_level":
        level = levels.get(value.lower())
        if level is None:
            found.append(f"service_level: {value!r} is not defined under [service_levels] "
                         f"(have: {', '.join(sorted(config.service_levels))})")
            return value
        return level
    raise AssertionError(column)


def _single_line_problem(column: str, value: str, found: list[str]) -> bool:
    if any(ch < " " or ch == "\x7f" for ch in value):
        found.append(f"{column}: must be one line without control characters")
        return True
    if len(value) > MAX_LENGTH[column]:
        found.append(f"{column}: longer than {MAX_LENGTH[column]} characters")
        return True
    return False


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _notes(entries: Sequence[Entry], config: Config) -> list[str]:
    plain: dict[str, int] = {}
    for entry in entries:
        organization = entry.settings.get("organization")
        if organization and organization_named(config, organization) is None:
            plain.setdefault(organization, entry.line)
    return [f"note: line {line}: organization {name!r} is not an [[organizations]] entry; "
            "kept as a plain name (no personal manager or organization settings)"
            for name, line in plain.items()]


def _apply(session: Session, entries: Sequence[Entry], now: datetime, result: ImportResult,
           *, write: bool) -> None:
    existing: dict[str, Customer] = {}
    emails = [entry.email for entry in entries]
    for start in range(0, len(emails), _LOOKUP_CHUNK):
        chunk = emails[start:start + _LOOKUP_CHUNK]
        for customer in session.scalars(select(Customer).where(Customer.email.in_(chunk))):
            existing[customer.email] = customer
    for entry in entries:
        customer = existing.get(entry.email)
        if customer is None:
            result.added += 1
            if write:
                session.add(Customer(email=entry.email, created_at=now, updated_at=now,
                                     **{"name": "", **entry.settings}))
            continue
        changes = {column: value for column, value in entry.settings.items()
                   if getattr(customer, column) != value}
        if not changes:
            result.unchanged += 1
            continue
        result.updated += 1
        if write:
            for column, value in changes.items():
                setattr(customer, column, value)
            customer.updated_at = now
