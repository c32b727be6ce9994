"""Quarantine: held raw with the reason, moved out of the way, listed, retried after a fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner
from sqlalchemy import func, select

from factories import (config_data, deliver, imap_mailbox, make_app, make_message,
                       message_with_attachment, smtp_section)
from mailbot.cli import cli
from mailbot.config import config_from_dict
from mailbot.daemon import App, run_once
from mailbot.errors import ConfigError
from mailbot.db.models import Case, MailboxState, Quarantine
from mailbot.quarantine import retry
from mailbot.store.blobs import BlobStore
from servers import imap_append, imap_connect

BIG = make_message(body="x" * 5000, message_id="<big@customer.test>")


def setup(tmp_path: Path, **over: Any) -> tuple[App, Path]:
    """An app and its config file on disk (the CLI reads the file, as an admin's would)."""
    data = config_data(tmp_path, **over)
    path = tmp_path / "mailbot.toml"
    path.write_text(tomli_w.dumps(data))
    return make_app(config_from_dict(data, source=path)), path


def inbox(app: App) -> Path:
    assert app.config.mailboxes[0].path is not None
    return Path(app.config.mailboxes[0].path)


def mailbot(path: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(path), *args])


def held(app: App) -> list[Quarantine]:
    with app.db.session() as session:
        return list(session.scalars(select(Quarantine).order_by(Quarantine.id)))


def test_poison_mail_is_moved_aside_and_not_reread(tmp_path: Path) -> None:
    # A Maildir poison message moves to .Quarantine/ and the next pass does not touch it again.
    app, _ = setup(tmp_path)
    deliver(inbox(app), b"\x00\x01 not mail at all", "poison")
    first = run_once(app).drained[0].outcomes
    second = run_once(app).drained[0].outcomes
    assert [o.status for o in first] == ["quarantined"] and second == []
    assert [p.name for p in (inbox(app) / ".Quarantine" / "cur").iterdir()] == ["poison"]
    (row,) = held(app)
    assert (row.status, row.moved_to) == ("held", ".Quarantine")
    assert BlobStore(app.config.storage.dir).get_raw(row.raw_sha256) == b"\x00\x01 not mail at all"


def test_list_and_retry_after_a_fix(tmp_path: Path) -> None:
    # An over-limit mail is listed with its reason; after raising the limit, retry opens its case.
    app, path = setup(tmp_path, storage={"max_message_size": 2048})
    deliver(inbox(app), BIG, "big")
    run_once(app)
    listed = mailbot(path, "quarantine", "list")
    assert listed.exit_code == 0 and "max_message_size" in listed.output
    rows = json.loads(mailbot(path, "quarantine", "list", "--json").output)
    assert [(r["id"], r["status"], r["size"]) for r in rows] == [(1, "held", len(BIG))]
    again = mailbot(path, "quarantine", "retry", "1")
    assert again.exit_code == 1 and "failed again" in again.output
    assert held(app)[0].retries == 1 and held(app)[0].status == "held"
    path.write_text(tomli_w.dumps(config_data(tmp_path)))  # the fix: the default 50 MiB limit
    fixed = mailbot(path, "quarantine", "retry", "1")
    assert fixed.exit_code == 0, fixed.output
    assert "[SUP-1]" in fixed.output and "acknowledgement queued" in fixed.output
    (row,) = held(app)
    assert row.status == "retried" and row.result and row.result.startswith("stored [SUP-1]")
    with app.db.session() as session:
        case = session.scalar(select(Case))
        assert case is not None and case.opened_at == row.received_at
    twice = mailbot(path, "quarantine", "retry", "1")
    assert twice.exit_code == 1 and "already retried" in twice.output
    missing = mailbot(path, "quarantine", "retry", "99")
    assert missing.exit_code == 1 and "no quarantined message 99" in missing.output
    assert "Traceback" not in missing.output


def test_retry_of_a_processing_failure(tmp_path: Path) -> None:
    # A message whose processing raised is retried once the cause is gone.
    class FailingBlobs(BlobStore):
        def put_attachment(self, data: bytes, safe_name: str) -> str:
            raise OSError("disk full")

    app, _ = setup(tmp_path)
    healthy = app.pipeline.blobs
    app.pipeline.blobs = FailingBlobs(app.config.storage.dir)
    deliver(inbox(app), message_with_attachment(b"%PDF", "scan.pdf"), "scan")
    run_once(app)
    (row,) = held(app)
    assert row.reason.startswith("processing:") and "disk full" in row.reason
    assert not retry(app.pipeline, app.db, row.id).ok  # still broken: stays held
    app.pipeline.blobs = healthy
    result = retry(app.pipeline, app.db, row.id)
    assert result.ok and result.outcome.case_token == "[SUP-1]"
    assert held(app)[0].status == "retried"


def test_quarantine_commands_have_examples(tmp_path: Path) -> None:
    # `quarantine list --help` and `quarantine retry --help` each show an example.
    for command in ("list", "retry"):
        result = CliRunner().invoke(cli, ["quarantine", command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output


@pytest.mark.integration
def test_imap_quarantine_moves_to_folder_and_keeps_the_mail(tmp_path: Path, imap_account: Any,
                                                            smtp_server: Any) -> None:
    # On IMAP, quarantined mail is moved to "Quarantine" (bytes intact), the rest is processed.
    poison = b"garbage without any header\r\n"
    imap_append(imap_account, poison)
    imap_append(imap_account, make_message())
    app, _ = setup(tmp_path, mailboxes=[imap_mailbox(imap_account)],
                   smtp=smtp_section(smtp_server))
    report = run_once(app)
    assert [o.status for o in report.drained[0].outcomes] == ["quarantined", "stored"]
    assert run_once(app).drained[0].outcomes == []
    client = imap_connect(imap_account)
    try:
        client.select_folder("INBOX", readonly=True)
        assert len(client.search(["ALL"])) == 1
        client.select_folder("Quarantine", readonly=True)
        (uid,) = client.search(["ALL"])
        data = client.fetch([uid], ["BODY.PEEK[]", "FLAGS"])[uid]
    finally:
        client.logout()
    assert data[b"BODY[]"] == poison and b"\\Seen" not in data[b"FLAGS"]
    (row,) = held(app)
    assert row.moved_to == "Quarantine" and row.uid == 1
    with app.db.session() as session:
        assert session.scalar(select(MailboxState.last_uid)) == 2
        assert session.scalar(select(func.count()).select_from(Case)) == 1


def test_db_upgrade_from_empty_reaches_head(tmp_path: Path) -> None:
    # `mailbot db upgrade` on an empty database creates the whole schema, quarantine columns included.
    data = config_data(tmp_path)
    path = tmp_path / "mailbot.toml"
    path.write_text(tomli_w.dumps(data))
    result = mailbot(path, "db", "upgrade")
    assert result.exit_code == 0 and "empty →" in result.output, result.output
    from mailbot.db.session import Database
    from sqlalchemy import inspect

    db = Database(config_from_dict(data, source=path).database.url)
    assert db.current_revision() == db.head_revision()
    columns = {c["name"] for c in inspect(db.engine).get_columns("quarantine")}
    assert {"received_at", "moved_to", "retries", "result"} <= columns
    assert "suppressions" in inspect(db.engine).get_table_names()
    assert mailbot(path, "db", "upgrade").output.startswith("database already at")


def test_quarantine_folder_must_differ_from_the_watched_folder(tmp_path: Path) -> None:
    # quarantine_folder = the watched folder would re-read poison mail for ever: refused at start.
    data = config_data(tmp_path)
    data["mailboxes"][0]["quarantine_folder"] = "INBOX"
    data["mailboxes"][0]["folder"] = "INBOX"
    with pytest.raises(ConfigError) as caught:
        config_from_dict(data, source=tmp_path / "mailbot.toml")
    assert "quarantine_folder" in str(caught.value)
