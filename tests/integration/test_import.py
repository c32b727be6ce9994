"""`mailbot import`: history into cases on a real Dovecot — read-only, silent, resumable."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from factories import SUPPORT, T0, config_data, imap_mailbox, make_app, make_message
from mailbot.cli import cli
from mailbot.config import config_from_dict
from mailbot.daemon import App, run_once
from mailbot.db.models import Case, Event, Job, MailboxState, Message, Outbox, Quarantine
from mailbot.quarantine import retry
from mailbot.reports import sla_report
from servers import imap_append, imap_append_many, imap_connect

pytestmark = pytest.mark.integration

OLGA = "olga@staff.test"
MARCH = datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc)


def at(day: int, hour: int = 10) -> datetime:
    return MARCH.replace(day=day, hour=hour)


# A conversation an older system handled, as it sits in an archive folder.
FIRST = make_message(message_id="<h1@customer.test>", date=at(1))
ANSWER = make_message(sender=f"Olga <{OLGA}>", subject="Re: Printer on fire",
                      body="#close\nWe replaced the printer.\nOlga\n",
                      message_id="<h2@staff.test>", date=at(1, 12),
                      In_Reply_To="<h1@customer.test>", References="<h1@customer.test>")
THANKS = make_message(subject="Re: Printer on fire", body="Thanks, it works.\n",
                      message_id="<h3@customer.test>", date=at(2),
                      In_Reply_To="<h2@staff.test>",
                      References="<h1@customer.test> <h2@staff.test>")
AWAY = make_message(sender="bob@customer.test", subject="Out of office",
                    body="I am away.\n", message_id="<away@customer.test>", date=at(3),
                    Auto_Submitted="auto-replied")
OTHER = make_message(sender="Bob <bob@customer.test>", subject="Invoice missing",
                     body="Where is my invoice?\n", message_id="<b1@customer.test>",
                     date=at(4), Cc="Carol <carol@customer.test>")
OWN = make_message(sender=SUPPORT, subject="Your case", message_id="<own@example.test>",
                   date=at(5))
POISON = b"\x00\x01 not mail at all"
HISTORY = [(FIRST, at(1)), (ANSWER, at(1, 12)), (THANKS, at(2)), (AWAY, at(3)),
           (OTHER, at(4)), (OWN, at(5)), (POISON, at(6))]


def setup(tmp_path: Path, account: Any, **over: Any) -> tuple[App, Path]:
    """An app with a manager and its config file on disk (the CLI reads the file)."""
    (tmp_path / "secret").write_text("s" * 32)
    data = config_data(tmp_path, mailboxes=[imap_mailbox(account)],
                       managers=[{"email": OLGA, "name": "Olga"}],
                       security={"secret_file": str(tmp_path / "secret")}, **over)
    path = tmp_path / "mailbot.toml"
    path.write_text(tomli_w.dumps(data))
    return make_app(config_from_dict(data, source=path)), path


def append_history(account: Any, folder: str = "Archive") -> list[int]:
    """The history, some of it read and answered, as a person left it."""
    flags = {0: (b"\\Seen",), 1: (b"\\Seen", b"\\Answered"), 4: (b"\\Flagged",)}
    uids = []
    for n, (raw, when) in enumerate(HISTORY):
        uid = imap_append(account, raw, folder=folder, flags=flags.get(n, ()), msg_time=when)
        assert uid is not None
        uids.append(uid)
    return uids


def folder_state(account: Any, folder: str) -> dict[int, tuple[bytes, ...]]:
    client = imap_connect(account)
    try:
        client.select_folder(folder, readonly=True)
        return {uid: tuple(sorted(set(flags) - {b"\\Recent"}))
                for uid, flags in client.get_flags(client.search(["ALL"])).items()}
    finally:
        client.logout()


def mailbot(path: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(path), *args])


def count(app: App, column: Any, *where: Any) -> int:
    with app.db.session() as session:
        return int(session.scalar(select(func.count(column)).where(*where)) or 0)


def cases_by_customer(app: App) -> dict[str, Case]:
    with app.db.session() as session:
        return {c.customer_email: c for c in session.scalars(select(Case))}


def event_kinds(app: App, case: Case) -> list[str]:
    with app.db.session() as session:
        return list(session.scalars(select(Event.kind).where(Event.case_id == case.id)
                                    .order_by(Event.id)))


def test_history_threads_into_closed_cases_and_nothing_is_sent_or_changed(
        tmp_path: Path, imap_account: Any) -> None:
    # The archive becomes two threaded, closed cases; no mail, no job, not a flag touched.
    app, path = setup(tmp_path, imap_account)
    append_history(imap_account)
    before = folder_state(imap_account, "Archive")
    result = mailbot(path, "import", "--mailbox", "support", "--folder", "Archive")
    assert result.exit_code == 0, result.output + result.stderr
    assert ("support/Archive: 5 imported (2 new cases, 2 threaded into existing cases, "
            "1 without a case), 0 duplicates skipped, 1 quarantined, 1 dropped") in result.stdout
    assert "imported 7/7 (100%)" in result.stderr
    assert folder_state(imap_account, "Archive") == before and len(before) == 7
    assert count(app, Outbox.id) == 0 and count(app, Job.id) == 0
    assert not Path(app.config.smtp.directory or "").exists()  # nothing was even rendered
    cases = cases_by_customer(app)
    alice, bob = cases["alice@customer.test"], cases["bob@customer.test"]
    with app.db.session() as session:
        messages = list(session.scalars(select(Message).where(Message.case_id == alice.id)
                                        .order_by(Message.id)))
        participants = {p.email for p in session.get(Case, bob.id).participants}  # type: ignore[union-attr]
        held = list(session.scalars(select(Quarantine)))
    assert [m.message_id for m in messages] == ["<h1@customer.test>", "<h2@staff.test>",
                                                "<h3@customer.test>"]
    assert [m.classification for m in messages] == ["customer", "staff", "customer"]
    assert all(m.imap_done and m.folder == "import:Archive" for m in messages)
    for case in (alice, bob):
        assert case.status == "closed" and case.preliminary_due is None
        assert case.detailed_due is None and case.acknowledged_at is None
    assert alice.closed_at == at(2) and alice.opened_at == at(1)
    assert alice.manager_email == OLGA
    kinds = event_kinds(app, alice)
    assert "imported" in kinds and kinds.count("message_received") == 3
    # The manager's history is theirs, not a forgery, and its #close is not run again.
    assert not {"staff_auth_failed", "closed", "reopened", "ack_queued",
                "manager_notified"} & set(kinds)
    assert participants == {"bob@customer.test", "carol@customer.test"}
    assert count(app, Message.id, Message.case_id.is_(None)) == 1  # the out-of-office
    assert [(q.folder, q.moved_to) for q in held] == [("import:Archive", None)]
    # Promises made before mailbot existed are not judged: the SLA report leaves them out.
    report = sla_report(app.db, app.pipeline.deadlines, T0)
    assert report["service_level"] == [] and report["manager"] == []


def test_rerun_is_idempotent_and_restart_only_finds_duplicates(tmp_path: Path,
                                                               imap_account: Any) -> None:
    # Run twice: nothing new. --restart reads it all again and records nothing twice.
    app, path = setup(tmp_path, imap_account)
    uids = append_history(imap_account)
    args = ("import", "--mailbox", "support", "--folder", "Archive", "--batch", "2")
    assert mailbot(path, *args).exit_code == 0
    messages, events = count(app, Message.id), count(app, Event.id)
    again = mailbot(path, *args)
    assert again.exit_code == 0
    assert f"nothing to import (checkpoint at UID {max(uids)})" in again.stdout
    restarted = mailbot(path, *args, "--restart")
    assert restarted.exit_code == 0, restarted.output
    assert "0 imported" in restarted.stdout and "5 duplicates skipped" in restarted.stdout
    assert (count(app, Message.id), count(app, Event.id)) == (messages, events)
    assert count(app, Case.id) == 2 and count(app, Quarantine.id) == 1


def test_since_takes_only_mail_received_from_that_day(tmp_path: Path, imap_account: Any) -> None:
    # --since is the server's SEARCH SINCE on INTERNALDATE: older mail stays out.
    app, path = setup(tmp_path, imap_account)
    append_history(imap_account)
    result = mailbot(path, "import", "--mailbox", "support", "--folder", "Archive",
                     "--since", "2024-03-04")
    assert result.exit_code == 0, result.output
    assert "1 imported (1 new cases" in result.stdout and "1 dropped" in result.stdout
    assert list(cases_by_customer(app)) == ["bob@customer.test"]


def test_mail_the_daemon_already_recorded_is_skipped(tmp_path: Path,
                                                     imap_account: Any) -> None:
    # The daemon saw the first mail live (and acknowledged it): the import skips it.
    app, path = setup(tmp_path, imap_account)
    imap_append(imap_account, FIRST, msg_time=T0)
    run_once(app)
    outbox = count(app, Outbox.id)
    assert count(app, Outbox.id, Outbox.kind == "ack") == 1
    append_history(imap_account)
    result = mailbot(path, "import", "--mailbox", "support", "--folder", "Archive")
    assert result.exit_code == 0, result.output
    assert "1 duplicates skipped" in result.stdout
    assert count(app, Outbox.id) == outbox and count(app, Job.id, Job.status == "pending") > 0
    alice = cases_by_customer(app)["alice@customer.test"]
    assert alice.status == "open"  # a live case keeps its status when history joins it
    assert count(app, Message.id, Message.case_id == alice.id, Message.direction == "in") == 3


def test_live_mail_reopens_an_imported_case(tmp_path: Path, imap_account: Any) -> None:
    # After the import, the customer writes again: the old case reopens and works as usual.
    app, path = setup(tmp_path, imap_account)
    append_history(imap_account)
    assert mailbot(path, "import", "--mailbox", "support", "--folder", "Archive").exit_code == 0
    imap_append(imap_account, make_message(
        subject="Re: Printer on fire", body="It is on fire again.\n",
        message_id="<h4@customer.test>", In_Reply_To="<h2@staff.test>"))
    report = run_once(app)
    assert [o.status for o in report.drained[0].outcomes] == ["stored"]
    alice = cases_by_customer(app)["alice@customer.test"]
    assert alice.status == "open" and alice.detailed_due is not None
    assert "reopened" in event_kinds(app, alice) and count(app, Case.id) == 2
    with app.db.session() as session:
        kinds = list(session.scalars(select(Outbox.kind)))
    assert "manager_update" in kinds and "ack" not in kinds  # a known case: no new ack


def test_the_daemons_own_folder_is_read_only_up_to_its_checkpoint(tmp_path: Path,
                                                                  imap_account: Any) -> None:
    # Importing INBOX beside the daemon: what the daemon has not reached is new mail to
    # acknowledge, so the import leaves it alone and does not take the mailbox lease.
    app, path = setup(tmp_path, imap_account)
    imap_append(imap_account, FIRST)
    run_once(app)
    new = imap_append(imap_account, OTHER)
    leases = app.leases("daemon-elsewhere")
    assert leases.acquire("support")
    result = mailbot(path, "import", "--mailbox", "support", "--folder", "INBOX")
    assert result.exit_code == 0, result.output
    assert "1 duplicates skipped" in result.stdout
    assert "1 newer messages left to the daemon" in result.stdout
    held = leases.current("support")
    assert held is not None and held.holder == "daemon-elsewhere"
    assert folder_state(imap_account, "INBOX")[new] == ()  # not even \Seen
    leases.release("support")
    assert [o.new_case for o in run_once(app).drained[0].outcomes] == [True]
    assert count(app, Outbox.id, Outbox.kind == "ack") == 2


def test_unknown_mailbox_is_one_line_and_exit_2(tmp_path: Path, imap_account: Any) -> None:
    # A typo in --mailbox says which mailboxes exist, without a traceback.
    _, path = setup(tmp_path, imap_account)
    result = mailbot(path, "import", "--mailbox", "suport", "--folder", "INBOX")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("mailbot: no mailbox 'suport' in the config "
                                     "(configured: support)")


def test_missing_folder_is_one_line_and_exit_1(tmp_path: Path, imap_account: Any) -> None:
    _, path = setup(tmp_path, imap_account)
    result = mailbot(path, "import", "--mailbox", "support", "--folder", "Nope")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot open folder 'Nope' read-only" in lines[0]


def test_changed_uidvalidity_needs_restart(tmp_path: Path, imap_account: Any) -> None:
    # The folder was re-created: its old checkpoint means nothing, so the import stops and
    # says so; --restart reads it again and recognises what it already has.
    app, path = setup(tmp_path, imap_account)
    append_history(imap_account)
    args = ("import", "--mailbox", "support", "--folder", "Archive")
    assert mailbot(path, *args).exit_code == 0
    client = imap_connect(imap_account)
    client.delete_folder("Archive")
    client.logout()
    append_history(imap_account)
    refused = mailbot(path, *args)
    assert refused.exit_code == 1
    assert "was re-created since the last import" in refused.stderr
    assert "--restart" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    restarted = mailbot(path, *args, "--restart")
    assert restarted.exit_code == 0, restarted.output
    assert "5 duplicates skipped" in restarted.stdout and count(app, Case.id) == 2


def test_quarantined_history_is_retried_as_history(tmp_path: Path, imap_account: Any) -> None:
    # Too big for the limit at import time; retried after the limit was raised, it still
    # sends nothing.
    app, path = setup(tmp_path, imap_account, storage={"max_message_size": 2048,
                                                       "dir": str(tmp_path / "storage")})
    imap_append(imap_account, make_message(body="x" * 5000), folder="Archive", msg_time=at(1))
    result = mailbot(path, "import", "--mailbox", "support", "--folder", "Archive")
    assert "1 quarantined" in result.stdout
    (row,) = [r for r in _quarantine(app)]
    bigger = app.config.model_copy(update={"storage": app.config.storage.model_copy(
        update={"max_message_size": 1024 * 1024})})
    outcome = retry(App.build(bigger, clock=app.clock, db=app.db).pipeline, app.db, row.id).outcome
    assert outcome.status == "stored" and outcome.new_case and not outcome.ack_queued
    assert count(app, Outbox.id) == 0 and count(app, Job.id) == 0
    assert cases_by_customer(app)["alice@customer.test"].status == "closed"


def _quarantine(app: App) -> list[Quarantine]:
    with app.db.session() as session:
        return list(session.scalars(select(Quarantine)))


# --------------------------------------------------------------------------- interruption


def _checkpoint(db_path: Path) -> int:
    try:
        with sqlite3.connect(db_path, timeout=5) as conn:
            row = conn.execute("SELECT last_uid FROM mailbox_state WHERE folder = "
                               "'import:Archive'").fetchone()
    except sqlite3.OperationalError:  # busy or not there yet
        return -1
    return int(row[0]) if row else -1


def _start(path: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(path), "import", "--mailbox",
             "support", "--folder", "Archive", "--batch", "5"],
            stdout=out, stderr=out, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait_past(db_path: Path, uid: int, proc: subprocess.Popen[bytes]) -> int:
    """Until a batch beyond ``uid`` committed; returns the checkpoint seen."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        seen = _checkpoint(db_path)
        if seen > uid:
            return seen
        assert proc.poll() is None, "the import ended before it could be interrupted"
        time.sleep(0.01)
    raise AssertionError(f"the import did not get past UID {uid}")


def test_killed_and_terminated_import_resumes_without_duplicates(tmp_path: Path,
                                                                 imap_account: Any) -> None:
    # A real `mailbot import` of 300 messages: kill -9 mid-way, then SIGTERM mid-way, then
    # run to the end. Every committed batch is exactly its checkpoint; the end has each
    # message once, one case each, and nothing sent or scheduled.
    total = 300
    app, path = setup(tmp_path, imap_account)
    imap_append_many(imap_account, [
        make_message(sender=f"c{n}@customer.test", message_id=f"<old{n}@customer.test>",
                     subject=f"old request {n}") for n in range(total)], folder="Archive",
        msg_time=MARCH)
    db_path = tmp_path / "mailbot.db"
    log = tmp_path / "import.log"

    proc = _start(path, log)
    _wait_past(db_path, 30, proc)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    killed_at = _checkpoint(db_path)
    assert 0 < killed_at < total
    assert count(app, Case.id) == count(app, Message.id) == killed_at

    proc = _start(path, log)
    _wait_past(db_path, killed_at + 30, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 1
    stopped_at = _checkpoint(db_path)
    assert killed_at < stopped_at < total
    assert count(app, Case.id) == count(app, Message.id) == stopped_at
    assert "run the same command again to continue" in log.read_text()

    done = subprocess.run(
        [sys.executable, "-m", "mailbot", "--config", str(path), "import", "--mailbox",
         "support", "--folder", "Archive", "--batch", "5"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"resumed after UID {stopped_at}" in done.stdout
    assert f"{total - stopped_at} imported" in done.stdout
    assert f"imported {total - stopped_at}/{total - stopped_at} (100%)" in done.stderr
    assert count(app, Case.id) == count(app, Message.id) == total
    with app.db.session() as session:
        ids = list(session.scalars(select(Message.message_id)))
        state = session.scalar(select(MailboxState).where(
            MailboxState.folder == "import:Archive"))
    assert len(set(ids)) == total and state is not None and state.last_uid == total
    assert count(app, Outbox.id) == 0 and count(app, Job.id) == 0


def test_the_folder_is_examined_not_selected(tmp_path: Path, imap_account: Any) -> None:
    # Read-only at both ends: under EXAMINE the server keeps no flag change (even one sent
    # by mistake), and the source refuses to send one.
    from mailbot.fetch.readonly import ReadOnlyImapSource, ReadOnlyViolation

    app, _ = setup(tmp_path, imap_account)
    (uid,) = append_history(imap_account)[:1]
    source = ReadOnlyImapSource(app.config.mailboxes[0].model_copy(update={"folder": "Archive"}))
    source.open()
    try:
        source.client.add_flags([uid], [b"\\Deleted", b"\\Flagged"])
        with pytest.raises(ReadOnlyViolation):
            source.mark_uids_done([uid])
        with pytest.raises(ReadOnlyViolation):
            source.quarantine_uids([uid])
        assert source.search(0) == sorted(folder_state(imap_account, "Archive"))
    finally:
        source.close()
    assert folder_state(imap_account, "Archive")[uid] == (b"\\Seen",)
