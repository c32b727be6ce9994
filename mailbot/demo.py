"""``mailbot demo``: the whole loop on this machine, with no servers and no root.

A Maildir plays the support mailbox and a directory plays the SMTP server — both
are real mailbot features (``kind = "maildir"``, ``transport = "directory"``), so
what the demo shows is the production pipeline, not a simulation of it. It writes
an ordinary config file, so every other command can be tried on the result.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from mailbot.config import load_config
from mailbot.daemon import App, run_once
from mailbot.outbox.render import format_local
from mailbot.send.directory import eml_name
from mailbot.views import show_case

MARKER = ".mailbot-demo"

CONFIG = """\
# Written by `mailbot demo`: a Maildir instead of IMAP, a directory instead of SMTP.
[database]
url = "sqlite:///mailbot.db"

[[mailboxes]]
name = "support"
address = "support@demo.example"
kind = "maildir"
path = "inbox"

[smtp]
transport = "directory"
directory = "sent"
from_address = "support@demo.example"
from_name = "Demo Support"

[cases]
token_prefix = "SUP"

[service_levels.standard]
calendar = "Mon-Fri 09:00-18:00"
timezone = "Europe/Kyiv"
holidays = "UA"
preliminary = "1d"
detailed = "2d"

[defaults]
service_level = "standard"
timezone = "Europe/Kyiv"
language = "en"

[templates]
dir = "{templates}"

[storage]
dir = "storage"
"""


def _deliver(inbox: Path, message: EmailMessage, name: str) -> None:
    """Drop a message into the Maildir the way a local MDA does: tmp/ then rename to new/."""
    tmp = inbox / "tmp" / name
    tmp.write_bytes(bytes(message))
    tmp.rename(inbox / "new" / name)


def _mail(sender: str, subject: str, body: str, **headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "Support <support@demo.example>"
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now().astimezone())
    message["Message-ID"] = make_msgid(domain="customer.example")
    for key, value in headers.items():
        message[key.replace("_", "-")] = value
    message.set_content(body)
    return message


def run_demo(directory: Path, echo: Callable[[str], None] = print) -> None:
    directory = directory.resolve()
    if directory.exists():
        if not (directory / MARKER).exists():
            raise SystemExit(f"mailbot demo: {directory} exists and is not a demo directory; "
                             "choose another with --dir")
        shutil.rmtree(directory)
    inbox = directory / "inbox"
    for sub in ("new", "cur", "tmp"):
        (inbox / sub).mkdir(parents=True)
    (directory / MARKER).write_text("made by mailbot demo\n")
    templates = Path.cwd() / "templates"
    if not templates.is_dir():
        templates = directory / "templates"
        templates.mkdir()
    config_path = directory / "mailbot.toml"
    config_path.write_text(CONFIG.format(templates=templates))

    config = load_config(config_path)
    app = App.build(config)
    app.db.upgrade()
    rel = _relative(directory)
    echo(f"demo directory: {rel}  (config {rel}/mailbot.toml)")

    # 1. A customer writes: a case opens and an acknowledgement goes out.
    first = _mail("Olena Petrenko <olena@customer.example>", "Printer prints only blank pages",
                  "Hello,\n\nsince this morning our office printer prints blank pages only.\n"
                  "Could you help?\n\nOlena")
    _deliver(inbox, first, "1.demo")
    run_once(app)
    case = show_case(app.db, "1", config.cases.token_prefix)
    assert case is not None
    ack = next(m for m in case["messages"] if m["direction"] == "out")
    echo(f"\n1. Olena wrote to support@: case {case['token']} opened "
         f"(service level {case['service_level']}).")
    echo(f"   acknowledgement written to {rel}/sent/{eml_name(ack['message_id'])}")
    echo(f"   promised: first answer by {format_local(case['preliminary_due'], case['timezone'])},"
         f" detailed by {format_local(case['detailed_due'], case['timezone'])}")

    # 2. She replies with the token in the subject: same case, no second acknowledgement.
    reply = _mail("Olena Petrenko <olena@customer.example>",
                  f"Re: Printer prints only blank pages {case['token']}",
                  "One more detail: the test page is blank too.",
                  In_Reply_To=ack["message_id"], References=ack["message_id"])
    _deliver(inbox, reply, "2.demo")
    run_once(app)

    # 3. Her mail server answers our acknowledgement with an out-of-office: recorded, not answered.
    ooo = _mail("Olena Petrenko <olena@customer.example>", "Automatic reply: I am out of office",
                "I am out of the office until Monday.", Auto_Submitted="auto-replied",
                In_Reply_To=ack["message_id"])
    _deliver(inbox, ooo, "3.demo")
    # 4. The same message delivered twice: recognised, nothing new.
    _deliver(inbox, first, "4.demo")
    run_once(app)

    case = show_case(app.db, "1", config.cases.token_prefix)
    assert case is not None
    kinds = [m["classification"] for m in case["messages"]]
    sent = sorted((directory / "sent").glob("*.eml"))
    echo(f"2. Olena replied with {case['token']} in the subject: attached to the same case, "
         "no second acknowledgement.")
    echo("3. Her out-of-office reply was recorded on the case and not answered (no mail loop).")
    echo("4. The first message delivered a second time was recognised; nothing was duplicated.")
    echo(f"\ncase {case['token']} now holds {len(kinds)} messages ({', '.join(kinds)}); "
         f"{len(sent)} mail(s) went out.")
    echo("\nWhere to look:")
    command = _command_name()
    echo(f"  {command} --config {rel}/mailbot.toml cases list")
    echo(f"  {command} --config {rel}/mailbot.toml cases show {case['token'].strip('[]')}")
    echo(f"  ls {rel}/sent/     (outgoing mail as .eml files)")
    echo(f"  ls {rel}/inbox/cur (processed mail, flagged Seen)")
    app.db.dispose()


def _command_name() -> str:
    """How the user can call mailbot: bare when on PATH, else the venv's script (make demo)."""
    if shutil.which("mailbot"):
        return "mailbot"
    return _relative(Path(sys.executable).parent / "mailbot")


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
