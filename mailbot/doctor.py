"""``mailbot doctor``: is this installation able to work, and if not, exactly why not.

An admin runs it after editing the config, after installing the systemd unit, or
when mail stopped: each check (config, database, every mailbox, SMTP, templates)
prints one line, ``ok`` with what was found or ``FAIL`` with a reason precise
enough to act on (which host, which folder, which revision). It only looks: it
logs in and selects folders read-only, says EHLO, and sends no mail.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from mailbot.config import (
    Config,
    MailboxConfig,
    SmtpConfig,
    load_config,
    parse_interval,
)
from mailbot.errors import ConfigError

#: Doctor should answer in seconds even against a black-holed server.
MAX_TIMEOUT_S = 10.0
CAPABILITIES = ("IDLE", "MOVE", "UIDPLUS")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


@dataclass
class DoctorReport:
    checks: list[Check]
    config_ok: bool = True

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_json(self) -> dict[str, object]:
        return {"ok": self.ok, "checks": [asdict(check) for check in self.checks]}


def run_doctor(config_path: str | Path | None,
               on_check: Callable[[Check], None] = lambda _c: None) -> DoctorReport:
    """Run every check in order; a bad config stops there (nothing else can be checked)."""
    report = DoctorReport([])

    def add(check: Check) -> None:
        report.checks.append(check)
        on_check(check)

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        report.config_ok = False
        add(Check("config", False, str(exc)))
        return report
    add(Check("config", True, str(config.source)))
    add(check_database(config))
    for mailbox in config.mailboxes:
        add(check_mailbox(mailbox))
    if not config.mailboxes:
        add(Check("mailboxes", False, "no [[mailboxes]] configured: nothing would be read"))
    add(check_smtp(config.smtp))
    add(check_templates(config))
    return report


def check_database(config: Config) -> Check:
    from mailbot.db.session import Database

    url = config.database.url
    shown = _redact(url)
    try:
        db = Database(url)
        try:
            current, head = db.current_revision(), db.head_revision()
        finally:
            db.dispose()
    except Exception as exc:  # any driver error is the answer to "does the DB work"
        return Check("database", False, f"{shown}: {_reason(exc)}")
    if current is None:
        return Check("database", False, f"{shown}: no schema yet; run `mailbot db upgrade`")
    if current != head:
        return Check("database", False, f"{shown}: schema at revision {current}, this mailbot "
                                         f"needs {head}; run `mailbot db upgrade`")
    return Check("database", True, f"{shown} (schema {head})")


def check_mailbox(mailbox: MailboxConfig) -> Check:
    name = f"{mailbox.kind} {mailbox.name}"
    if mailbox.kind == "maildir":
        path = mailbox.path
        if path is None or not Path(path).is_dir():
            return Check(name, False, f"Maildir {path} does not exist")
        missing = [sub for sub in ("new", "cur", "tmp") if not (Path(path) / sub).is_dir()]
        if missing:
            return Check(name, False, f"{path} is not a Maildir (no {', '.join(missing)}/)")
        return Check(name, True, str(path))
    return _check_imap(mailbox, name)


def _check_imap(mailbox: MailboxConfig, name: str) -> Check:
    from imapclient import IMAPClient
    from imapclient.exceptions import IMAPClientError, LoginError

    where = f"{mailbox.imap_host}:{mailbox.imap_port}"
    timeout = min(mailbox.timeout_s, MAX_TIMEOUT_S)
    context = ssl.create_default_context() if (mailbox.imap_ssl or mailbox.imap_starttls) else None
    try:
        client = IMAPClient(mailbox.imap_host or "", port=mailbox.imap_port, ssl=mailbox.imap_ssl,
                            ssl_context=context, timeout=timeout)
    except (OSError, IMAPClientError) as exc:
        return Check(name, False, f"cannot connect to {where}: {_reason(exc)}")
    try:
        if mailbox.imap_starttls:
            client.starttls(ssl.create_default_context())
        try:
            secret = mailbox.secret()
        except ValueError as exc:
            return Check(name, False, f"password: {exc}")
        try:
            client.login(mailbox.username or "", secret.get_secret_value() if secret else "")
        except LoginError as exc:
            return Check(name, False, f"login as {mailbox.username!r} on {where} refused: "
                                      f"{_reason(exc)}")
        if not client.folder_exists(mailbox.folder):
            return Check(name, False, f"{where}: folder {mailbox.folder!r} does not exist")
        client.select_folder(mailbox.folder, readonly=True)
        have = {c.decode().upper() for c in client.capabilities()}
        caps = [c for c in CAPABILITIES if c in have]
        missing = [c for c in CAPABILITIES if c not in have]
        detail = f"{where} {mailbox.folder} ({' '.join(caps) or 'no IDLE/MOVE/UIDPLUS'})"
        if missing:
            detail += f"; without {'/'.join(missing)}: " + ", ".join(
                {"IDLE": "polls every poll_interval", "MOVE": "moves by COPY",
                 "UIDPLUS": "never expunges"}[c] for c in missing)
        if mailbox.processed_folder and not client.folder_exists(mailbox.processed_folder):
            detail += f"; processed_folder {mailbox.processed_folder!r} will be created"
        return Check(name, True, detail)
    except (TimeoutError, OSError, IMAPClientError) as exc:
        return Check(name, False, f"{where}: {_reason(exc)}")
    finally:
        try:
            client.logout()
        except Exception:  # the server may already have gone; nothing is left to close
            client.shutdown()


def check_smtp(smtp: SmtpConfig) -> Check:
    if smtp.transport == "directory":
        directory = smtp.directory
        if directory is None or not Path(directory).is_dir():
            return Check("smtp", False, f"directory {directory} does not exist")
        return Check("smtp", True, f"directory {directory} (no mail leaves this machine)")
    return asyncio.run(_check_smtp(smtp))


async def _check_smtp(smtp: SmtpConfig) -> Check:
    import aiosmtplib

    where = f"{smtp.host}:{smtp.port}"
    timeout = min(parse_interval(smtp.timeout).total_seconds(), MAX_TIMEOUT_S)
    try:
        secret = smtp.secret()
    except ValueError as exc:
        return Check("smtp", False, f"password: {exc}")
    client = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port, use_tls=smtp.ssl,
                             start_tls=smtp.starttls, timeout=timeout)
    try:
        await client.connect()
        await client.ehlo()
        detail = where + (" TLS" if smtp.ssl or smtp.starttls else "")
        if smtp.username and secret is not None:
            await client.login(smtp.username, secret.get_secret_value())
            detail += f", logged in as {smtp.username}"
        return Check("smtp", True, detail + " (no mail sent)")
    except aiosmtplib.SMTPAuthenticationError as exc:
        return Check("smtp", False, f"login as {smtp.username!r} on {where} refused: "
                                    f"{exc.code} {exc.message}")
    except aiosmtplib.SMTPResponseException as exc:
        return Check("smtp", False, f"{where} answered {exc.code} {exc.message}")
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        return Check("smtp", False, f"{_reason(exc)} ({where})")
    finally:
        if client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


def check_templates(config: Config) -> Check:
    from mailbot.templates_cli import check_templates as check_all

    try:
        report = check_all(config)
    except Exception as exc:  # a template check must report, not crash the doctor
        return Check("templates", False, _reason(exc))
    if not report.ok:
        more = f" (+{len(report.errors) - 1} more; run `mailbot templates check`)" \
            if len(report.errors) > 1 else ""
        return Check("templates", False, report.errors[0] + more)
    return Check("templates", True, f"{len(report.lines)} template(s) render with sample data "
                                    f"({config.templates.dir})")


def _reason(exc: BaseException) -> str:
    """The part of an exception an admin can act on, without the Python noise."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"unknown host ({exc.strerror})"
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror.lower()
    if "Connection refused" in text or "[Errno 111]" in text:  # aiosmtplib wraps the OSError
        return "connection refused"
    if "timed out" in text.lower():
        return "timed out"
    if text.startswith(("b'", 'b"')):  # imaplib hands over the server's bytes as repr
        text = text[2:-1]
    return text.strip() or type(exc).__name__


def _redact(url: str) -> str:
    """A database URL without its password."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
