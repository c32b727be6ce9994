"""Hand-made hostile and broken mail through the real pipeline (Maildir in, directory out)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from factories import deliver, make_app, make_config, make_message
from mailbot.daemon import App, run_once
from mailbot.db.models import Attachment, Case, Message, Participant, Quarantine
from mailbot.pipeline import Outcome
from mailbot.store.blobs import BlobStore

HEAD = b"From: Eve <eve@customer.test>\r\nTo: support@example.test\r\n"


def nested(depth: int) -> bytes:
    """A multipart tree ``depth`` levels deep with a text leaf at the bottom."""
    parts = b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    for level in range(depth):
        boundary = f"b{level}".encode()
        parts = (b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n--" + boundary
                 + b"\r\n" + parts + b"\r\n--" + boundary + b"--\r\n")
    return HEAD + b"Subject: deep\r\nMessage-ID: <deep%d@c.test>\r\nMIME-Version: 1.0\r\n" % depth \
        + parts


def mime(content_type: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (HEAD + b"Subject: charset\r\nMessage-ID: <cs" + str(hash(body)).encode()
            + b"@c.test>\r\nMIME-Version: 1.0\r\nContent-Type: " + content_type + b"\r\n" + extra
            + b"\r\n" + body)


CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "nul bytes in headers and body": (
        lambda: HEAD + b"Subject: nul\x00here\r\nMessage-ID: <nul@c.test>\r\n\r\nbody\x00with nul\r\n",
        "stored"),
    "8-bit windows-1251 headers": (
        lambda: b"From: \xc8\xe2\xe0\xed <ivan@customer.test>\r\nTo: support@example.test\r\n"
                b"Subject: \xcf\xf0\xe8\xed\xf2\xe5\xf0 \xe3\xee\xf0\xe8\xf2\r\n"
                b"Message-ID: <cp@c.test>\r\n\r\n\xf2\xe5\xea\xf1\xf2\r\n",
        "stored"),
    "duplicate From, Subject, Message-ID, Date": (
        lambda: b"From: a@customer.test\r\nFrom: b@customer.test\r\nTo: support@example.test\r\n"
                b"Subject: one\r\nSubject: two\r\nMessage-ID: <d1@c.test>\r\n"
                b"Message-ID: <d2@c.test>\r\nDate: Mon, 23 Nov 2026 08:00:00 +0000\r\n"
                b"Date: yesterday\r\n\r\nbody\r\n",
        "stored"),
    "invalid date": (
        lambda: HEAD + b"Subject: when\r\nDate: Mon, 45 Foo 99999 25:61:00 +9999\r\n"
                       b"Message-ID: <date@c.test>\r\n\r\nbody\r\n",
        "stored"),
    "no headers but From": (lambda: b"From: lonely@customer.test\r\n\r\nbody\r\n", "stored"),
    "no From at all": (lambda: b"Subject: who?\r\n\r\nbody\r\n", "stored"),
    "unknown charset": (lambda: mime(b"text/plain; charset=x-klingon", b"caf\xe9\r\n"), "stored"),
    "mislabelled charset": (
        lambda: mime(b"text/plain; charset=us-ascii", "Привіт".encode("koi8-u")), "stored"),
    "broken base64 and quoted-printable": (
        lambda: mime(b"text/plain; charset=utf-8", b"=E2=82=AC=ZZ=\r\n!!!",
                     b"Content-Transfer-Encoding: base64\r\n"), "stored"),
    "missing final boundary": (
        lambda: mime(b"multipart/mixed; boundary=zz", b"--zz\r\nContent-Type: text/plain\r\n\r\nx"),
        "stored"),
    "nesting 20 deep": (lambda: nested(20), "stored"),
    "nesting 80 deep (multipart bomb)": (lambda: nested(80), "quarantined"),
    "attachment names with path separators": (
        lambda: mime(b"multipart/mixed; boundary=a",
                     b"--a\r\nContent-Type: text/plain\r\n\r\nsee\r\n--a\r\n"
                     b"Content-Type: application/octet-stream\r\n"
                     b"Content-Disposition: attachment; filename=\"..\\\\..\\\\boot.ini\"\r\n\r\nx\r\n"
                     b"--a\r\nContent-Type: application/octet-stream\r\n"
                     b"Content-Disposition: attachment; filename=\"/etc/../../passwd\"\r\n\r\ny\r\n"
                     b"--a--\r\n"),
        "stored"),
    "binary garbage": (lambda: bytes(range(256)) * 4, "quarantined"),
    "empty": (lambda: b"", "quarantined"),
}


def inbox(app: App) -> Path:
    assert app.config.mailboxes[0].path is not None
    return Path(app.config.mailboxes[0].path)


def run_one(app: App, raw: bytes, name: str = "m") -> Outcome:
    deliver(inbox(app), raw, name)
    (outcome,) = run_once(app).drained[0].outcomes
    return outcome


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_mail_is_processed_or_quarantined(tmp_path: Path, name: str) -> None:
    # Each nasty ends stored (with its raw bytes kept) or quarantined with a reason: no exception.
    build, expected = CASES[name]
    app = make_app(make_config(tmp_path))
    raw = build()
    outcome = run_one(app, raw)
    assert outcome.status == expected, outcome.reason
    with app.db.session() as session:
        if expected == "quarantined":
            row = session.scalar(select(Quarantine))
            assert row is not None and row.reason.startswith("parse:")
            sha = row.raw_sha256
        else:
            message = session.scalar(select(Message).where(Message.direction == "in"))
            assert message is not None and "\x00" not in message.subject + message.body_text
            sha = message.raw_sha256
            for attachment in session.scalars(select(Attachment)):
                assert "/" not in attachment.filename and "\\" not in attachment.filename
                assert ".." not in attachment.filename
    assert BlobStore(app.config.storage.dir).get_raw(sha) == raw


def test_thousands_of_recipients_stay_fast(tmp_path: Path) -> None:
    # A mail To/Cc 5000 addresses is stored quickly; only the first 50 Cc become participants.
    app = make_app(make_config(tmp_path))
    many = ", ".join(f"user{n}@bulk.test" for n in range(5000))
    raw = make_message(subject="spam blast", message_id="<blast@c.test>", to=many, Cc=many)
    run_one(app, make_message(subject="warm-up", message_id="<warm@c.test>"), "warm")
    started = time.perf_counter()  # the parse workers are up: this times the message alone
    outcome = run_one(app, raw)
    elapsed = time.perf_counter() - started
    assert outcome.status == "stored" and elapsed < 3, elapsed
    with app.db.session() as session:
        message = session.scalar(select(Message).where(Message.message_id == "<blast@c.test>"))
        assert message is not None and len(message.to_addrs) == 5000
        assert session.scalar(select(func.count()).select_from(Participant)
                              .where(Participant.case_id == message.case_id)) == 51


def test_50_mb_message_against_the_size_limit(tmp_path: Path) -> None:
    # A 50 MiB scan over the default limit is quarantined with the reason and its raw bytes kept.
    app = make_app(make_config(tmp_path))
    limit = app.config.storage.max_message_size
    assert limit == 50 * 1024 * 1024
    line = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3\r\n"
    body = line * (limit // len(line) + 10)
    raw = (HEAD + b"Subject: scan\r\nMessage-ID: <scan@c.test>\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body)
    outcome = run_one(app, raw)
    assert outcome.status == "quarantined" and "max_message_size" in outcome.reason
    with app.db.session() as session:
        row = session.scalar(select(Quarantine))
        assert row is not None and row.size == len(raw)
    assert BlobStore(app.config.storage.dir).get_raw(row.raw_sha256) == raw
    with app.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 0
