"""``mailbot demo``: the whole loop on this machine, with no servers and no root.

A Maildir plays the support mailbox and a directory plays the SMTP server — both
are real mailbot features (``kind = "maildir"``, ``transport = "directory"``), so
what the demo shows is the production pipeline, not a simulation of it. It writes
an ordinary config file, so every other command can be tried on the result.
"""

from __future__ import annotations

import secrets
import shutil
import sys
from collections.abc import Callable
from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime, make_msgid
from pathlib import Path

from mailbot.config import load_config
from mailbot.daemon import App, run_once
from mailbot.outbox.render import format_local
from mailbot.send.directory import eml_name
from mailbot.views import list_jobs, show_case

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

[[managers]]
email = "ivan@staff.example"
name = "Ivan Petrenko"
timezone = "Europe/Kyiv"

[security]
secret_file = "secret"

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
        del message[key.replace("_", "-")]
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
    (directory / "secret").write_text(secrets.token_hex(32) + "\n")
    (directory / "secret").chmod(0o600)

    config = load_config(config_path)
    app = App.build(config)
    app.db.upgrade()
    rel = _relative(directory)
    echo(f"demo directory: {rel}  (config {rel}/mailbot.toml)")

    # 1. A customer writes: a case opens, she is acknowledged, her manager is notified.
    first = _mail("Olena Petrenko <olena@customer.example>", "Printer prints only blank pages",
                  "Hello,\n\nsince this morning our office printer prints blank pages only.\n"
                  "Could you help?\n\nOlena")
    _deliver(inbox, first, "1.demo")
    run_once(app)
    case = show_case(app.db, "1", config.cases.token_prefix)
    assert case is not None
    ack = _sent(directory, "ack")[0]
    notification = _sent(directory, "manager_new_case")[0]
    zone = case["timezone"]
    echo(f"\n1. Olena wrote to support@: case {case['token']} opened "
         f"(service level {case['service_level']}, manager {case['manager']}).")
    echo(f"   acknowledgement to Olena: {rel}/sent/{eml_name(str(ack['Message-ID']))}")
    echo(f"     promises a first answer by {format_local(case['preliminary_due'], zone)}")
    echo(f"     and a detailed one by {format_local(case['detailed_due'], zone)}")
    echo(f"   notification to Ivan:     {rel}/sent/{eml_name(str(notification['Message-ID']))}")

    # 2. Ivan answers from his mail client (Outlook style, the notification quoted below).
    quoted = notification.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    answer = _mail("Ivan Petrenko <ivan@staff.example>", f"RE: {notification['Subject']}",
                   "Hello Olena,\n\nplease open the printer and remove the orange tape from "
                   "the new toner cartridge.\n\nIvan\n\nFrom: Demo Support "
                   "<support@demo.example>\nSent: today\nTo: Ivan Petrenko\nSubject: "
                   f"{notification['Subject']}\n\n{quoted}",
                   To=str(notification["Reply-To"]), In_Reply_To=str(notification["Message-ID"]),
                   References=str(notification["Message-ID"]))
    _deliver(inbox, answer, "2.demo")
    # ... and leaves an internal note.
    note = _mail("Ivan Petrenko <ivan@staff.example>", f"RE: {notification['Subject']}",
                 "#note third toner complaint from this office this month",
                 To=str(notification["Reply-To"]), In_Reply_To=str(notification["Message-ID"]))
    _deliver(inbox, note, "3.demo")
    run_once(app)
    relay = _sent(directory, "relay")[0]
    relayed = relay.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    echo("\n2. Ivan replied from his mail client: relayed to Olena from support@, "
         f"without the quoted notification:\n   {rel}/sent/{eml_name(str(relay['Message-ID']))}")
    echo("   " + "\n   ".join(line for line in relayed.splitlines()[:4]))
    echo("   His #note stayed internal: it is in the case log, not in any mail to Olena.")

    # 3. Olena answers with the token in the subject: same case, Ivan is told, no new ack.
    reply = _mail("Olena Petrenko <olena@customer.example>",
                  f"Re: Printer prints only blank pages {case['token']}",
                  "That was it, thank you!", In_Reply_To=str(relay["Message-ID"]),
                  References=str(relay["Message-ID"]))
    _deliver(inbox, reply, "4.demo")
    # 4. Her mail server answers our relay with an out-of-office: recorded, not answered.
    ooo = _mail("Olena Petrenko <olena@customer.example>", "Automatic reply: I am out of office",
                "I am out of the office until Monday.", Auto_Submitted="auto-replied",
                In_Reply_To=str(relay["Message-ID"]))
    _deliver(inbox, ooo, "5.demo")
    # 5. The first message delivered a second time: recognised, nothing new.
    _deliver(inbox, first, "6.demo")
    run_once(app)

    case = show_case(app.db, "1", config.cases.token_prefix)
    assert case is not None
    kinds = [m["classification"] for m in case["messages"]]
    sent = sorted((directory / "sent").glob("*.eml"))
    echo(f"\n3. Olena replied with {case['token']} in the subject: same case, Ivan got it "
         "as an update, no second acknowledgement.")
    echo("4. Her out-of-office was recorded on the case and not answered (no mail loop).")
    echo("5. Her first mail delivered a second time was recognised; nothing was duplicated.")
    followups = [row for row in list_jobs(app.db, config) if row["kind"] == "followup"]
    if followups:
        echo(f"6. Olena's morning follow-up is planned for {followups[0]['local_due']} "
             f"({followups[0]['timezone']}), and Ivan's morning digest in his zone.")
    echo(f"\ncase {case['token']} now holds {len(kinds)} messages ({', '.join(kinds)}); "
         f"{len(sent)} mail(s) went out.")
    echo("\nWhere to look:")
    command = _command_name()
    echo(f"  {command} --config {rel}/mailbot.toml cases list")
    echo(f"  {command} --config {rel}/mailbot.toml cases show {case['token'].strip('[]')}")
    echo(f"  {command} --config {rel}/mailbot.toml schedule list")
    echo(f"  ls {rel}/sent/     (outgoing mail as .eml files)")
    echo(f"  ls {rel}/inbox/cur (processed mail, flagged Seen)")
    app.db.dispose()


def _sent(directory: Path, kind: str) -> list[EmailMessage]:
    """Outgoing mail of one kind, oldest first, as the recipient would read it."""
    found = []
    for path in sorted((directory / "sent").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        message = message_from_bytes(path.read_bytes(), policy=default)
        if message["X-Mailbot-Kind"] == kind:
            found.append(message)
    return found  # type: ignore[return-value]


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
