"""mailbot.parse over every file of the shared real-world corpus (../shared/corpus)."""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mailbot.errors import ParseError
from mailbot.parse import parse
from mailbot.message import Inbound

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
NOT_MAIL = {"COPYING", "MANIFEST.md", ".gitattributes", "MIT-LICENSE"}
# Files of the corpus that are not RFC 5322 messages: plain-text reply bodies, an
# empty file and a bare body. They must give ParseError; every other file must parse.
EXPECTED_PARSE_ERRORS = re.compile(
    r"mail-parser-reply/.*"
    r"|bestpractical-rt/t/data/emails/lorem-ipsum"
    r"|mikel-mail/spec/fixtures/emails/sample_output_multipart"
)


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"shared corpus missing at {CORPUS}")
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return sorted(
        path
        for path in CORPUS.rglob("*")
        if path.is_file() and path.name not in NOT_MAIL and not path.name.startswith(("LICENSE", "README"))
    )


def corpus_mail(relative: str) -> Inbound:
    path = CORPUS / relative
    if not path.is_file():
        corpus_files()  # skips, or fails on CI, when the corpus is missing
        pytest.fail(f"corpus file missing: {relative}")
    return parse(path.read_bytes())


def test_every_corpus_file_parses_or_raises_parse_error() -> None:
    # Every corpus file gives an Inbound with an id and a str subject, or ParseError; nothing else.
    files = corpus_files()
    assert len(files) > 250
    outcomes: Counter[str] = Counter()
    parse_errors: dict[str, str] = {}
    unexpected: list[str] = []
    started = time.perf_counter()
    for path in files:
        relative = path.relative_to(CORPUS).as_posix()
        try:
            msg = parse(path.read_bytes())
        except ParseError as exc:
            outcomes["ParseError"] += 1
            parse_errors[relative] = str(exc)
            continue
        except Exception as exc:  # the point of the test: report, don't stop at the first
            unexpected.append(f"{relative}: {type(exc).__name__}: {exc}")
            continue
        outcomes["Inbound"] += 1
        if not (isinstance(msg, Inbound) and msg.message_id and isinstance(msg.subject, str)):
            unexpected.append(f"{relative}: incomplete Inbound ({msg.message_id!r}, {msg.subject!r})")
        if msg.message_id_synthesized:
            outcomes["synthesized Message-ID"] += 1
        outcomes["attachments"] += len(msg.attachments)
    elapsed = time.perf_counter() - started
    print(
        f"\ncorpus: {len(files)} files in {elapsed:.2f}s ({len(files) / elapsed:.0f} msg/s): "
        + ", ".join(f"{key} {value}" for key, value in sorted(outcomes.items()))
    )
    for relative, reason in sorted(parse_errors.items()):
        print(f"  ParseError {relative}: {reason}")
    assert unexpected == []
    surprising = {name: reason for name, reason in parse_errors.items() if not EXPECTED_PARSE_ERRORS.fullmatch(name)}
    assert surprising == {}


def test_spamscope_mail_test_2_known_facts() -> None:
    # mail_test_2 has the subject, Message-ID, two To addresses, three attachments and date of MANIFEST.md.
    msg = corpus_mail("spamscope-mail-parser/tests/mails/mail_test_2")
    assert msg.subject == "Bollettino Meteorologico del 29/11/2015"
    assert msg.message_id == "<4516257BC5774408ADC1263EEBBBB73F@ad.regione.vda.it>"
    assert not msg.message_id_synthesized
    assert len(msg.to) == 2
    assert [a.filename for a in msg.attachments] == ["intestazione.jpg", "logometeo.jpg", "Bollettino.pdf"]
    assert msg.attachments[2].data.startswith(b"%PDF")
    assert msg.date is not None
    assert msg.date.astimezone(timezone.utc) == datetime(2015, 11, 29, 8, 45, 18, tzinfo=timezone.utc)


def test_spamscope_mail_test_4_windows_1251_label_decodes_cleanly() -> None:
    # mail_test_4's windows-1251-labelled HTML holds UTF-8 Spanish, which must not turn into Cyrillic mojibake.
    # (MANIFEST.md calls it windows-1251 content; its only 8-bit bytes are UTF-8 "ó".)
    msg = corpus_mail("spamscope-mail-parser/tests/mails/mail_test_4")
    assert "Protección" in msg.html and "Tecnológico" in msg.html
    assert "ProtecciГі" not in msg.html
    assert msg.text.startswith("Dear All,")
    assert {a.filename for a in msg.attachments} == {"img1.jpg", "Payment Invoice.zip"}


def test_windows_1251_encoded_sender_name() -> None:
    # A windows-1251 encoded word in From decodes to Cyrillic (mikel raw_email_bad_time).
    msg = corpus_mail("mikel-mail/spec/fixtures/emails/plain_emails/raw_email_bad_time.eml")
    assert msg.from_addr is not None and msg.from_addr.name.startswith("Атиков")


def test_raw_koi8r_subject_without_mime_headers() -> None:
    # RT's raw 8-bit KOI8-R subject and body, with no MIME headers at all, decode to Cyrillic.
    msg = corpus_mail("bestpractical-rt/t/data/emails/russian-subject-no-content-type")
    assert msg.subject == "тест тест"
    assert msg.text.strip() == "ТЕСТ"


def test_cyrillic_body_in_spam_sample() -> None:
    # spamscope mail_test_1 (Russian, CloseBoundaryNotFound) keeps its Cyrillic text.
    msg = corpus_mail("spamscope-mail-parser/tests/mails/mail_test_1")
    assert msg.subject == "письмо уведом-е"
    assert "Налогоплательщик" in msg.text + msg.html
    assert "CloseBoundaryNotFoundDefect" in msg.defects


def test_iso_2022_jp_body_and_subject() -> None:
    # A 7bit ISO-2022-JP body and subject are decoded, not left as escape sequences.
    msg = corpus_mail("mikel-mail/spec/fixtures/emails/multi_charset/japanese_iso_2022.eml")
    assert msg.subject == "まみむめも"
    assert msg.text.strip() == "すみません。"


def test_gb18030_subject() -> None:
    # RT's GB18030 ticket decodes.
    assert corpus_mail("bestpractical-rt/t/data/emails/new-ticket-from-gb18030").subject == "测试"


def test_rfc2231_continued_japanese_filename() -> None:
    # An RFC 2231 filename split into continuations is joined and decoded.
    msg = corpus_mail("bestpractical-rt/t/data/emails/rfc2231-attachment-filename-continuations")
    assert [a.filename for a in msg.attachments] == ["新しいテキスト ドキュメント.txt"]


def test_uuencoded_attachment() -> None:
    # spamscope mail_test_15's uuencoded zip comes out as zip bytes (not to be opened).
    msg = corpus_mail("spamscope-mail-parser/tests/mails/mail_test_15")
    assert [a.filename for a in msg.attachments] == ["REQUEST FOR QUOTE.zip"]
    assert msg.attachments[0].data.startswith(b"PK\x03\x04")


def test_endless_enclosed_and_huge_header_parse() -> None:
    # flanker's 3 MB enclosed-endless and 210 KB long-header stress files parse.
    assert corpus_mail("flanker/tests/fixtures/messages/enclosed-endless.eml").subject == "Wow"
    assert corpus_mail("flanker/tests/fixtures/messages/long-header.eml").subject.startswith(
        "Die heiße Zypernsonne quälte Max und Victoria ja böse auf dem Weg bis zur Küste"
    )


def test_utf8_raw_headers_rfc6532() -> None:
    # Raw UTF-8 headers (RFC 6532) decode, address included.
    msg = corpus_mail("mikel-mail/spec/fixtures/emails/rfc6532/utf8_headers.eml")
    assert msg.subject == "Säying Hello"
    assert msg.from_addr is not None and (msg.from_addr.email, msg.from_addr.name) == (
        "jdöe@mächine.example",
        "Jöhn Doe",
    )


def test_office365_bounce_is_a_report() -> None:
    # flanker's Office 365 bounce parses as a mail from the postmaster.
    msg = corpus_mail("flanker/tests/fixtures/messages/bounce/office365.eml")
    assert msg.subject.startswith("Undeliverable:")
    assert msg.from_addr is not None and msg.from_addr.email.startswith("postmaster@")
