"""Builders for the tests: configs, apps and messages, each overridable per test.

Configs are built as dictionaries and validated by the real loader, so a test
config is held to the same rules as an admin's; apps get a ``FixedClock`` and a
migrated SQLite database in the test's temporary directory.
"""

from __future__ import annotations

import copy
import email
import os
from email import policy
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from mailbot.clock import Clock, FixedClock
from mailbot.config import Config, config_from_dict
from mailbot.daemon import App

# A Monday morning in Kyiv: inside working hours of the default level.
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
SUPPORT = "support@example.test"


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def base_config(tmp: Path) -> dict[str, Any]:
    return {
        "database": {"url": f"sqlite:///{tmp / 'mailbot.db'}"},
        "mailboxes": [{"name": "support", "address": SUPPORT, "kind": "maildir",
                       "path": str(tmp / "inbox")}],
        "smtp": {"transport": "directory", "directory": str(tmp / "sent"),
                 "from_address": SUPPORT, "from_name": "Support"},
        "cases": {"token_prefix": "SUP"},
        "service_levels": {"standard": {"calendar": "Mon-Fri 09:00-18:00",
                                        "timezone": "Europe/Kyiv", "holidays": "UA",
                                        "preliminary": "1d", "detailed": "2d"}},
        "defaults": {"service_level": "standard", "timezone": "Europe/Kyiv", "language": "en"},
        "templates": {"dir": str(tmp / "templates")},
        "storage": {"dir": str(tmp / "storage")},
    }


def config_data(tmp: Path, **over: Any) -> dict[str, Any]:
    return deep_merge(base_config(tmp), over)


def make_config(tmp: Path, **over: Any) -> Config:
    return config_from_dict(config_data(tmp, **over), source=tmp / "mailbot.toml")


def make_app(config: Config, clock: Clock | None = None) -> App:
    app = App.build(config, clock=clock or FixedClock(T0))
    app.db.upgrade()
    return app


def imap_mailbox(account: Any, name: str = "support", **over: Any) -> dict[str, Any]:
    """A [[mailboxes]] entry for a test Dovecot account (password via a file, as admins do)."""
    secret = Path(account.maildir).parent / f".{account.username}.pw"
    secret.write_text(account.password + "\n")
    return {"name": name, "address": account.address, "kind": "imap",
            "imap_host": account.host, "imap_port": account.port, "imap_ssl": False,
            "username": account.username, "password_file": str(secret),
            "poll_interval": "1s", "timeout": "5s", **over}


def smtp_section(sink: Any, **over: Any) -> dict[str, Any]:
    return {"transport": "smtp", "host": sink.host, "port": sink.port, "ssl": False,
            "starttls": False, "from_address": SUPPORT, "from_name": "Support",
            "retry_max_delay": "1m", **over}


def make_message(
    sender: str = "Alice Customer <alice@customer.test>",
    subject: str = "Printer on fire",
    body: str = "Hello,\nthe printer is on fire.\n",
    *,
    to: str = SUPPORT,
    message_id: str | None = "<m1@customer.test>",
    date: datetime = T0,
    **headers: str,
) -> bytes:
    """An RFC 5322 message as bytes; extra headers as keyword arguments (In_Reply_To=…)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    if message_id:
        message["Message-ID"] = message_id
    for key, value in headers.items():
        message[key.replace("_", "-")] = value
    message.set_content(body)
    return bytes(message)


def deliver(maildir: Path, raw: bytes, name: str, at: datetime = T0) -> Path:
    """Put a message into a Maildir as an MDA does (tmp/ then new/), delivered ``at``."""
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    tmp = maildir / "tmp" / name
    tmp.write_bytes(raw)
    os.utime(tmp, (at.timestamp(), at.timestamp()))
    target = maildir / "new" / name
    tmp.rename(target)
    return target


def inbox_of(app: App) -> Path:
    """The Maildir of the app's first mailbox."""
    assert app.config.mailboxes[0].path is not None
    return Path(app.config.mailboxes[0].path)


def sent_mail(app: App, kind: str | None = None) -> list[EmailMessage]:
    """Mail the app wrote to its directory sender, oldest first; only ``kind`` if given."""
    assert app.config.smtp.directory is not None
    paths = sorted(Path(app.config.smtp.directory).glob("*.eml"),
                   key=lambda p: p.stat().st_mtime_ns)
    found = [email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in paths]
    return [m for m in found if kind is None or m["X-Mailbot-Kind"] == kind]  # type: ignore[misc]


def plain_body(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def staff_reply(notification: EmailMessage, text: str, *, sender: str = "olga@staff.test",
                message_id: str = "<reply@staff.test>", **headers: str) -> bytes:
    """A manager's answer to one of our notifications, as their mail client sends it."""
    reply = EmailMessage()
    reply["From"] = sender
    reply["To"] = notification["Reply-To"]
    reply["Subject"] = "Re: " + str(notification["Subject"])
    reply["Message-ID"] = message_id
    reply["In-Reply-To"] = notification["Message-ID"]
    reply["References"] = notification["Message-ID"]
    for key, value in headers.items():
        del reply[key.replace("_", "-")]
        reply[key.replace("_", "-")] = value
    reply.set_content(text)
    return bytes(reply)


def message_with_attachment(data: bytes, filename: str, content_type: str = "application/pdf",
                            *, subject: str = "scan", message_id: str = "<scan@customer.test>",
                            sender: str = "carol@customer.test") -> bytes:
    """A customer mail with one attachment (its name is taken as given: tests feed bad ones)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SUPPORT
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content("see attached")
    maintype, _, subtype = content_type.partition("/")
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return bytes(message)
