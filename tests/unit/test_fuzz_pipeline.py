"""Fuzzing: hypothesis-generated mail never raises out of parse + process on a real SQLite db.

Bounded (``max_examples``, env ``MAILBOT_FUZZ_EXAMPLES``) so it runs in the normal suite; ``deadline=None`` because
the first examples pay for SQLAlchemy's statement compilation.
"""

from __future__ import annotations

import base64
import os
import quopri
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factories import make_app, make_config, make_message
from mailbot.daemon import App
from mailbot.pipeline import Delivery, parse_raw, process

FINAL = {"stored", "duplicate", "dropped", "quarantined"}
# MAILBOT_FUZZ_EXAMPLES=5000 for a long hunt; the suite's default keeps it to a few seconds.
FUZZ = settings(max_examples=int(os.environ.get("MAILBOT_FUZZ_EXAMPLES", "200")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

HEADER_NAMES = [
    "From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
    "Auto-Submitted", "Precedence", "List-Id", "List-Unsubscribe", "X-Autoreply", "X-Loop",
    "X-Auto-Response-Suppress", "Return-Path", "Content-Type", "Content-Transfer-Encoding",
    "MIME-Version", "Content-Disposition", "X-Failed-Recipients", "Received",
]
CHARSETS = ["utf-8", "us-ascii", "windows-1251", "koi8-r", "koi8-u", "iso-8859-1", "iso-2022-jp",
            "gb2312", "x-unknown", "utf-7", "", "utf-16"]
CTES = ["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode", "bogus"]

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
header_value = st.one_of(
    text,
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.builds(lambda cs, t: f"=?{cs}?B?{base64.b64encode(t.encode()).decode()}?=",
              st.sampled_from(CHARSETS), text),
    st.builds(lambda local, dom: f"Someone <{local}@{dom}>", st.from_regex(r"[a-z.]{0,8}",
              fullmatch=True), st.sampled_from(["customer.test", "example.test", "", "x"])),
    st.sampled_from(["<>", "auto-replied", "no", "bulk", "support@example.test",
                     "multipart/report; report-type=delivery-status; boundary=b",
                     "Mon, 99 Foo 2026 25:00:00 +9999", "<a@b> <c@d>", "=?utf-8?q?broken"]),
)
header = st.tuples(st.one_of(st.sampled_from(HEADER_NAMES),
                             st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,15}", fullmatch=True)),
                   header_value)


def encode_body(data: bytes, cte: str) -> bytes:
    if cte == "base64":
        return base64.encodebytes(data)
    if cte == "quoted-printable":
        return quopri.encodestring(data)
    return data


leaf = st.builds(
    lambda ctype, cs, cte, body, name: (
        f"Content-Type: {ctype}; charset=\"{cs}\"".encode()
        + (f"\r\nContent-Disposition: attachment; filename=\"{name}\"".encode("utf-8", "replace")
           if name is not None else b"")
        + f"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n".encode() + encode_body(body, cte)),
    st.sampled_from(["text/plain", "text/html", "application/pdf", "message/delivery-status",
                     "text/rfc822-headers", "image/png", "message/rfc822", "text/calendar"]),
    st.sampled_from(CHARSETS), st.sampled_from(CTES), st.binary(max_size=200),
    st.one_of(st.none(), text, st.sampled_from(["../../etc/passwd", "..\\boot.ini", "a/b/c.txt"])),
)


def multipart(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda subtype, boundary, parts, close: (
            f"Content-Type: multipart/{subtype}; boundary=\"{boundary}\"\r\n\r\n".encode()
            + b"".join(f"--{boundary}\r\n".encode() + part + b"\r\n" for part in parts)
            + (f"--{boundary}--\r\n".encode() if close else b"")),
        st.sampled_from(["mixed", "alternative", "related", "report", "signed"]),
        st.from_regex(r"[A-Za-z0-9'()+_,./:=?-]{1,20}", fullmatch=True),
        st.lists(children, max_size=4), st.booleans())


mime_tree = st.recursive(leaf, multipart, max_leaves=12)


def message(headers: list[tuple[str, str]], tree: bytes) -> bytes:
    head = b"".join(f"{name}: {value}".encode("utf-8", "surrogateescape").replace(b"\n", b" ")
                    + b"\r\n" for name, value in headers)
    return head + b"MIME-Version: 1.0\r\n" + tree


@pytest.fixture
def app(tmp_path: Path) -> App:
    return make_app(make_config(tmp_path))


def run(app: App, raw: bytes) -> str:
    """parse + process as drain does, in a real transaction; returns the outcome's status."""
    delivery = Delivery("support", "maildir", None, None, app.clock.now())
    parsed = parse_raw(raw, delivery, app.config)
    with app.db.transaction() as session:
        outcome = process(app.pipeline, session, raw, parsed, delivery)
    assert outcome.status in FINAL
    if outcome.status == "quarantined":
        assert outcome.reason.startswith("parse:"), outcome.reason
    return outcome.status


@FUZZ
@given(headers=st.lists(header, max_size=12), tree=mime_tree)
def test_random_headers_and_mime_trees(app: App, headers: list[tuple[str, str]],
                                       tree: bytes) -> None:
    # Random header sets over random MIME trees (any charset/encoding) are stored or quarantined.
    run(app, message(headers, tree))


@FUZZ
@given(data=st.data())
def test_mutated_real_mail(app: App, data: st.DataObject) -> None:
    # Byte-level damage to a well-formed mail (cuts, flips, inserted junk) never raises.
    raw = bytearray(make_message(Cc="bob@customer.test", References="<x@y>"))
    for _ in range(data.draw(st.integers(0, 8))):
        at = data.draw(st.integers(0, len(raw)))
        action = data.draw(st.sampled_from(["flip", "insert", "cut"]))
        if action == "flip" and at < len(raw):
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "insert":
            raw[at:at] = data.draw(st.binary(max_size=20))
        else:
            del raw[at:at + data.draw(st.integers(0, 30))]
    run(app, bytes(raw))


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_arbitrary_bytes(app: App, raw: bytes) -> None:
    # Arbitrary bytes are either parsed and processed or quarantined with a parse reason.
    run(app, raw)
