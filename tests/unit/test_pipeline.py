"""The pipeline end to end without network servers: Maildir in, directory out, real SQLite."""

from __future__ import annotations

import email
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import func, select

from factories import T0, deliver, make_app, make_config, make_message, message_with_attachment
from mailbot.daemon import App, run_once
from mailbot.db.models import Case, Event, Message, Outbox, Participant, Quarantine
from mailbot.store.blobs import BlobStore


@pytest.fixture
def app(tmp_path: Path) -> App:
    return make_app(make_config(tmp_path))


def inbox(app: App) -> Path:
    path = app.config.mailboxes[0].path
    assert path is not None
    return Path(path)


def count(app: App, model: type) -> int:
    with app.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def sent_messages(app: App) -> list[email.message.EmailMessage]:
    directory = app.config.smtp.directory
    assert directory is not None
    return [email.message_from_bytes(p.read_bytes(), policy=default)  # type: ignore[misc]
            for p in sorted(Path(directory).glob("*.eml"))]


def test_new_mail_opens_case_and_sends_ack(app: App) -> None:
    # A customer's first mail opens case SUP-1, records them as participant and sends one ack.
    deliver(inbox(app), make_message(), "a")
    report = run_once(app)
    assert [o.status for o in report.drained[0].outcomes] == ["stored"]
    assert report.drained[0].outcomes[0].case_token == "[SUP-1]"
    with app.db.session() as session:
        case = session.scalar(select(Case))
        assert case is not None and case.number == 1 and case.token == "[SUP-1]"
        assert case.customer_email == "alice@customer.test"
        assert case.opened_at == T0
        assert case.acknowledged_at == T0
        assert [p.email for p in session.scalars(select(Participant))] == ["alice@customer.test"]
        kinds = [e.kind for e in session.scalars(select(Event).order_by(Event.id))]
    assert kinds == ["case_opened", "message_received", "assigned", "ack_queued",
                     "manager_not_notified", "followup_scheduled", "ack_sent"]
    (ack,) = sent_messages(app)
    assert ack["Subject"] == "Re: Printer on fire [SUP-1]"
    assert ack["To"] == "alice@customer.test"
    assert ack["In-Reply-To"] == "<m1@customer.test>"
    assert ack["References"] == "<m1@customer.test>"
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Auto-Response-Suppress"] == "All"
    assert ack["Message-ID"].endswith("@example.test>")
    body = ack.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # The promised deadlines, in the customer's zone: Monday 10:00 Kyiv + 1 and 2 working days.
    assert "Tue 24 Nov 2026, 10:00 (Europe/Kyiv)" in body
    assert "Wed 25 Nov 2026, 10:00 (Europe/Kyiv)" in body
    assert "[SUP-1]" in body
    # The processed file is flagged Seen in cur/.
    assert not list((inbox(app) / "new").iterdir())
    assert [p.name.endswith(":2,S") for p in (inbox(app) / "cur").iterdir()] == [True]


def test_raw_message_kept_content_addressed(app: App) -> None:
    # The exact bytes are stored under their sha256 and can be read back.
    raw = make_message()
    deliver(inbox(app), raw, "a")
    run_once(app)
    with app.db.session() as session:
        message = session.scalar(select(Message).where(Message.direction == "in"))
        assert message is not None
    blobs = BlobStore(app.config.storage.dir)
    assert blobs.get_raw(message.raw_sha256) == raw


def test_poll_twice_and_duplicate_delivery_create_nothing_new(app: App) -> None:
    # Re-running and re-delivering (even with other trace headers) adds no case, message or ack.
    raw = make_message()
    deliver(inbox(app), raw, "a")
    run_once(app)
    run_once(app)
    deliver(inbox(app), raw, "b")
    deliver(inbox(app), b"Received: from relay2.test by mx.test; Mon, 23 Nov 2026 08:01:00 +0000\r\n"
            + raw, "c")
    report = run_once(app)
    assert [o.status for o in report.drained[0].outcomes] == ["duplicate", "duplicate"]
    assert (count(app, Case), count(app, Message), count(app, Outbox)) == (1, 2, 1)
    assert len(sent_messages(app)) == 1


def test_message_without_message_id_is_idempotent(app: App) -> None:
    # A synthesized Message-ID is stable, so the same id-less mail twice is one message.
    raw = make_message(message_id=None)
    deliver(inbox(app), raw, "a")
    deliver(inbox(app), raw, "b")
    run_once(app)
    assert (count(app, Case), count(app, Outbox)) == (1, 1)
    with app.db.session() as session:
        message_id = session.scalar(select(Message.message_id).where(Message.direction == "in"))
    assert message_id and message_id.startswith("<") and message_id.endswith("@example.test>")


def test_reply_with_token_joins_case_without_second_ack(app: App) -> None:
    # A customer reply with [SUP-1] under "AW:" joins the case; only the first mail is acknowledged.
    deliver(inbox(app), make_message(), "a")
    run_once(app)
    deliver(inbox(app), make_message(subject="AW: Re: Printer on fire [SUP-1]",
                                     message_id="<m2@customer.test>"), "b")
    report = run_once(app)
    outcome = report.drained[0].outcomes[0]
    assert (outcome.case_token, outcome.new_case, outcome.ack_queued) == ("[SUP-1]", False, False)
    assert (count(app, Case), count(app, Outbox)) == (1, 1)


def test_reply_by_references_joins_case(app: App) -> None:
    # A reply whose subject lost the token still threads via In-Reply-To on our ack.
    deliver(inbox(app), make_message(), "a")
    run_once(app)
    (ack,) = sent_messages(app)
    deliver(inbox(app), make_message(sender="bob@customer.test", subject="what about it?",
                                     message_id="<m2@customer.test>",
                                     In_Reply_To=ack["Message-ID"]), "b")
    report = run_once(app)
    assert report.drained[0].outcomes[0].case_token == "[SUP-1]"
    with app.db.session() as session:
        roles = {p.email: p.role for p in session.scalars(select(Participant))}
    assert roles == {"alice@customer.test": "customer", "bob@customer.test": "cc"}


def test_token_from_stranger_opens_new_case(app: App) -> None:
    # Someone not on SUP-1, referencing none of its mail, cannot write into it with its token.
    deliver(inbox(app), make_message(), "a")
    run_once(app)
    deliver(inbox(app), make_message(sender="mallory@evil.test", subject="Re: [SUP-1] hi",
                                     message_id="<x@evil.test>"), "b")
    report = run_once(app)
    outcome = report.drained[0].outcomes[0]
    assert outcome.case_token == "[SUP-2]" and outcome.new_case
    with app.db.session() as session:
        refused = session.scalar(select(Event).where(Event.kind == "token_refused"))
        assert refused is not None and refused.detail["token_number"] == 1


def test_auto_reply_is_recorded_but_not_answered(app: App) -> None:
    # An out-of-office answering our ack lands on the case and gets no reply: no mail loop.
    deliver(inbox(app), make_message(), "a")
    run_once(app)
    (ack,) = sent_messages(app)
    deliver(inbox(app), make_message(subject="Out of office", message_id="<ooo@customer.test>",
                                     Auto_Submitted="auto-replied",
                                     In_Reply_To=ack["Message-ID"]), "b")
    deliver(inbox(app), make_message(sender="news@list.test", subject="Weekly news",
                                     message_id="<n@list.test>", List_Id="<news.list.test>"), "c")
    run_once(app)
    assert (count(app, Case), count(app, Outbox)) == (1, 1)
    with app.db.session() as session:
        rows = {m.message_id: (m.classification, m.case_id)
                for m in session.scalars(select(Message).where(Message.direction == "in"))}
        suppressed = session.scalar(select(Event).where(Event.kind == "reply_suppressed"))
    assert rows["<ooo@customer.test>"] == ("auto_reply", 1)
    assert rows["<n@list.test>"] == ("auto_reply", None)  # recorded, but no case for a newsletter
    assert suppressed is not None and "Auto-Submitted" in suppressed.detail["reason"]


def test_mail_from_own_address_is_never_answered(app: App) -> None:
    # Our own acknowledgement coming back into the mailbox is dropped, not turned into a case.
    deliver(inbox(app), make_message(sender="support@example.test", subject="Re: x [SUP-9]"), "a")
    report = run_once(app)
    assert [o.status for o in report.drained[0].outcomes] == ["dropped"]
    assert (count(app, Case), count(app, Outbox)) == (0, 0)


def test_unparseable_mail_is_quarantined_with_raw_bytes(app: App) -> None:
    # Mail the parser refuses is kept raw with the reason and does not stop the next message.
    deliver(inbox(app), b"", "a")
    deliver(inbox(app), make_message(), "b")
    report = run_once(app)
    assert [o.status for o in report.drained[0].outcomes] == ["quarantined", "stored"]
    with app.db.session() as session:
        held = session.scalar(select(Quarantine))
        assert held is not None and held.reason.startswith("parse:")
    assert BlobStore(app.config.storage.dir).get_raw(held.raw_sha256) == b""


def test_oversized_mail_is_quarantined(tmp_path: Path) -> None:
    # A message over storage.max_message_size is kept raw and quarantined, not parsed.
    app = make_app(make_config(tmp_path, storage={"max_message_size": 2048}))
    deliver(inbox(app), make_message(body="x" * 5000), "a")
    report = run_once(app)
    assert report.drained[0].outcomes[0].status == "quarantined"
    assert "max_message_size" in report.drained[0].outcomes[0].reason


def test_failure_inside_processing_rolls_back_only_that_message(tmp_path: Path) -> None:
    # A store failure for one message quarantines it; the batch's other message still commits.
    class FailingBlobs(BlobStore):
        def put_attachment(self, data: bytes, safe_name: str) -> str:
            raise OSError("disk full")

    app = make_app(make_config(tmp_path))
    app.pipeline.blobs = FailingBlobs(app.config.storage.dir)
    deliver(inbox(app), message_with_attachment(b"%PDF", "scan.pdf"), "a")
    deliver(inbox(app), make_message(), "b")
    report = run_once(app)
    assert [o.status for o in report.drained[0].outcomes] == ["quarantined", "stored"]
    assert "disk full" in report.drained[0].outcomes[0].reason
    with app.db.session() as session:
        assert session.scalar(select(Case.customer_email)) == "alice@customer.test"
    assert count(app, Case) == 1  # the failed message left no half-written case behind


def test_attachments_stored_under_safe_names(app: App) -> None:
    # An attachment named with a path is stored by a safe basename inside the store.
    deliver(inbox(app), message_with_attachment(b"secret", "../../etc/passwd", "text/plain",
                                                subject="logs",
                                                message_id="<logs@customer.test>"), "a")
    run_once(app)
    with app.db.session() as session:
        from mailbot.db.models import Attachment

        (attachment,) = session.scalars(select(Attachment))
    assert "/" not in attachment.filename and ".." not in attachment.filename
    stored = BlobStore(app.config.storage.dir).attachment_path(attachment.sha256,
                                                              attachment.filename)
    assert stored.read_bytes() == b"secret"
    assert stored.resolve().is_relative_to(Path(app.config.storage.dir).resolve())


def test_case_numbers_are_sequential(app: App) -> None:
    # Three new requests become SUP-1, SUP-2 and SUP-3 in arrival order.
    for n in range(3):
        deliver(inbox(app), make_message(sender=f"c{n}@customer.test", subject=f"q{n}",
                                         message_id=f"<q{n}@customer.test>"), f"{n}")
    run_once(app)
    with app.db.session() as session:
        tokens = list(session.scalars(select(Case.token).order_by(Case.id)))
    assert tokens == ["[SUP-1]", "[SUP-2]", "[SUP-3]"]
