"""mailbot.parse: raw bytes → Inbound, on hand-made messages."""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import datetime, timedelta, timezone

import mailparser  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbot.errors import ParseError
from mailbot.parse import MAX_MIME_DEPTH, content_hash, html_to_text, parse, safe_filename
from mailbot.message import Address, Inbound


def make(headers: list[tuple[str, str | bytes]], body: bytes | str = b"Hello.\r\n", eol: bytes = b"\r\n") -> bytes:
    """A message from (name, value) pairs; str values are UTF-8, bytes are kept raw."""
    lines = [name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()) for name, value in headers]
    body_bytes = body if isinstance(body, bytes) else body.encode()
    return eol.join(lines) + eol + eol + body_bytes.replace(b"\r\n", eol)


BASIC: list[tuple[str, str | bytes]] = [
    ("From", '"Ann Customer" <Ann@Example.COM>'),
    ("To", "Support <support@example.net>, bob@example.org"),
    ("Cc", "=?utf-8?q?Smith=2C_John?= <JOHN@example.org>"),
    ("Reply-To", "ann.private@example.com"),
    ("Subject", "Printer on fire"),
    ("Date", "Tue, 03 Mar 2026 09:15:00 +0300"),
    ("Message-ID", "<ABC.123@Mail.Example.COM>"),
    ("In-Reply-To", "<prev@example.net>"),
    ("References", "<root@example.net>\r\n <prev@example.net>"),
    ("MIME-Version", "1.0"),
    ("Content-Type", "text/plain; charset=utf-8"),
]


def multipart(parts: list[bytes], boundary: str = "BOUNDARY", subtype: str = "mixed") -> tuple[str, bytes]:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return f'multipart/{subtype}; boundary="{boundary}"', body + b"--" + boundary.encode() + b"--\r\n"


def attachment_part(filename_header: str, data: bytes, content_type: str = "application/octet-stream") -> bytes:
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return (
        f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: attachment; {filename_header}\r\n\r\n"
    ).encode() + encoded


def with_attachments(*parts: bytes) -> bytes:
    ctype, body = multipart([b"Content-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n", *parts])
    return make(
        [("From", "a@example.com"), ("Subject", "files"), ("Message-ID", "<f@x>"), ("Content-Type", ctype)], body
    )


# --- the ordinary case ----------------------------------------------------------------


def test_parse_basic_fields() -> None:
    # Every field of an ordinary message is read as documented.
    raw = make(BASIC, "Hello,\r\nthe printer is on fire.\r\n")
    at = datetime(2026, 3, 3, 6, 16, tzinfo=timezone.utc)
    msg = parse(raw, received_at=at)
    assert isinstance(msg, Inbound)
    assert msg.raw_sha256 == hashlib.sha256(raw).hexdigest()
    assert msg.size == len(raw)
    assert msg.message_id == "<ABC.123@Mail.Example.COM>" and not msg.message_id_synthesized
    assert msg.subject == "Printer on fire"
    assert msg.from_addr == Address("ann@example.com", "Ann Customer")
    assert msg.to == [Address("support@example.net", "Support"), Address("bob@example.org", "")]
    assert msg.cc == [Address("john@example.org", "Smith, John")]
    assert msg.reply_to == [Address("ann.private@example.com", "")]
    assert msg.date == datetime(2026, 3, 3, 9, 15, tzinfo=timezone(timedelta(hours=3)))
    assert msg.date is not None and msg.date.utcoffset() == timedelta(hours=3)
    assert msg.in_reply_to == ["<prev@example.net>"]
    assert msg.references == ["<root@example.net>", "<prev@example.net>"]
    assert msg.text == "Hello,\nthe printer is on fire.\n"
    assert msg.html == "" and msg.attachments == [] and msg.defects == []
    assert msg.received_at == at
    assert msg.header("SUBJECT") == "Printer on fire"


def test_headers_dict_all_occurrences_lower_case_decoded() -> None:
    # headers maps lower-cased names to every value, in order, unfolded and decoded.
    raw = make([*BASIC, ("X-Tag", "one"), ("x-tag", "=?utf-8?b?0LTQstCw?="), ("X-Long", "a\r\n\tb")])
    headers = parse(raw).headers
    assert headers["x-tag"] == ["one", "два"]
    assert headers["x-long"] == ["a\tb"]
    assert headers["references"] == ["<root@example.net> <prev@example.net>"]
    assert all(name == name.lower() for name in headers)


# --- Message-ID -----------------------------------------------------------------------


def without(name: str, headers: list[tuple[str, str | bytes]] = BASIC) -> list[tuple[str, str | bytes]]:
    return [(n, v) for n, v in headers if n.lower() != name.lower()]


def test_missing_message_id_is_synthesized_from_content_hash() -> None:
    # A message without Message-ID gets <content_hash[:32].synth@domain>, flagged as synthesized.
    raw = make(without("Message-ID"))
    msg = parse(raw)
    assert msg.message_id_synthesized
    assert msg.message_id == f"<{msg.content_hash[:32]}.synth@mailbot.invalid>"
    assert "message-id: missing, synthesized" in msg.defects


def test_synthesized_message_id_is_stable() -> None:
    # The same bytes parsed twice give the same synthesized id.
    raw = make(without("Message-ID"))
    assert parse(raw).message_id == parse(raw).message_id


def test_synthesized_message_id_uses_synth_domain() -> None:
    # The synthesized id's domain is configurable.
    msg = parse(make(without("Message-ID")), synth_domain="support.example.com")
    assert msg.message_id.endswith(".synth@support.example.com>")


@pytest.mark.parametrize("domain", ["", "a b>", "x@y", "<x>"])
def test_unusable_synth_domain_falls_back(domain: str) -> None:
    # An unusable synth_domain (say, from a misconfigured address) falls back instead of raising.
    msg = parse(make(without("Message-ID")), synth_domain=domain)
    assert msg.message_id.endswith(".synth@mailbot.invalid>")


TRACE_A: list[tuple[str, str | bytes]] = [
    ("Return-Path", "<ann@example.com>"),
    ("Delivered-To", "support@example.net"),
    ("Received", "from mx1.example.net by imap.example.net; Tue, 03 Mar 2026 09:15:02 +0300"),
    ("Received", "from mail.example.com by mx1.example.net\r\n\twith ESMTPS; Tue, 03 Mar 2026 09:15:01 +0300"),
    ("ARC-Seal", "i=1; a=rsa-sha256; cv=none; d=example.net; s=arc; b=AAAA"),
    ("Authentication-Results", "mx1.example.net; dkim=pass header.d=example.com"),
]
TRACE_B: list[tuple[str, str | bytes]] = [
    ("X-Original-To", "help@example.net"),
    ("Delivered-To", "help@example.net"),
    ("Received", "from mx2.example.net by imap.example.net; Tue, 03 Mar 2026 09:16:40 +0300"),
    ("X-Received", "by 10.0.0.1 with SMTP id abc; Tue, 03 Mar 2026 09:16:39 +0300"),
    ("Received-SPF", "pass (mx2.example.net: domain of example.com designates 192.0.2.1)"),
    ("ARC-Message-Signature", "i=1; a=rsa-sha256; b=BBBB"),
]
DOVECOT: list[tuple[str, str | bytes]] = [
    ("Status", "RO"),
    ("X-UID", "42"),
    ("X-Keywords", "$Seen"),
    ("Content-Length", "23"),
]


def test_same_mail_via_different_routes_is_one_message() -> None:
    # Copies that differ only in trace headers have the same content_hash and synthesized id.
    original = without("Message-ID")
    a = parse(make(TRACE_A + original))
    b = parse(make(TRACE_B + original[:3] + [("X-Spam-Status", "No")] + original[3:] + DOVECOT, eol=b"\n"))
    c = parse(b"From MAILER-DAEMON Tue Mar  3 09:15:02 2026\n" + make(original, eol=b"\n"))
    assert a.raw_sha256 != b.raw_sha256
    assert a.content_hash == c.content_hash
    assert a.message_id == c.message_id and a.message_id_synthesized


def test_content_hash_ignores_trace_headers_anywhere_and_line_endings() -> None:
    # Trace fields are dropped wherever they stand; CRLF vs LF and refolding do not matter.
    original = make(BASIC)
    relayed = make(TRACE_A + BASIC[:4] + TRACE_B + BASIC[4:] + DOVECOT, eol=b"\n")
    refolded = original.replace(b"Support <support@example.net>, bob", b"Support <support@example.net>,\r\n   bob")
    assert content_hash(original) == content_hash(relayed) == content_hash(refolded)


def test_content_hash_keeps_dkim_signature_and_content() -> None:
    # DKIM-Signature is not trace; a changed header or body gives another hash.
    base = content_hash(make(BASIC))
    assert content_hash(make([("DKIM-Signature", "v=1; d=example.com; b=XXXX"), *BASIC])) != base
    assert content_hash(make(BASIC, "Hello!\r\n")) != base
    assert content_hash(make([*without("Subject"), ("Subject", "Printer on fire!")])) != base


@pytest.mark.parametrize(
    "value, expected",
    [
        ("   <ABC@Example.COM>   ", "<ABC@Example.COM>"),
        ("<abc@example.com> (added by postmaster)", "<abc@example.com>"),
        ("<abc\r\n @example.com>", "<abc@example.com>"),
        ("abc@example.com", "<abc@example.com>"),
        ("<20260303.1234@[192.0.2.1]>", "<20260303.1234@[192.0.2.1]>"),
    ],
)
def test_message_id_normalised(value: str, expected: str) -> None:
    # The id keeps its brackets and case, loses whitespace; a bare id gets brackets.
    msg = parse(make([*without("Message-ID"), ("Message-ID", value)]))
    assert msg.message_id == expected and not msg.message_id_synthesized


@pytest.mark.parametrize("value", ["", "   ", "<>", "not an id at all", "<\x01@x>"])
def test_garbage_message_id_is_synthesized(value: str) -> None:
    # An empty or unusable Message-ID is replaced like a missing one.
    msg = parse(make([*without("Message-ID"), ("Message-ID", value)]))
    assert msg.message_id_synthesized
    assert msg.message_id == f"<{msg.content_hash[:32]}.synth@mailbot.invalid>"


# --- In-Reply-To / References ---------------------------------------------------------


@pytest.mark.parametrize(
    "in_reply_to, references, expected_irt, expected_refs",
    [
        ("<a@x> (Ann's message of Monday)", "<r@x> <a@x>", ["<a@x>"], ["<r@x>", "<a@x>"]),
        ("a@x", "r@x  a@x,b@x", ["<a@x>"], ["<r@x>", "<a@x>", "<b@x>"]),
        ("garbage <>", "<r@x><a@x> <r@x> junk", [], ["<r@x>", "<a@x>"]),
        ("", "", [], []),
        ("Your message of Mon, 2 Mar 2026", "<r@x\r\n >", [], ["<r@x>"]),
    ],
)
def test_reference_ids(in_reply_to: str, references: str, expected_irt: list[str], expected_refs: list[str]) -> None:
    # Ids are taken in brackets, or bare when a value has no brackets; garbage and repeats go.
    headers = [*without("In-Reply-To", without("References")), ("In-Reply-To", in_reply_to), ("References", references)]
    msg = parse(make(headers))
    assert msg.in_reply_to == expected_irt
    assert msg.references == expected_refs


# --- subjects and charsets ------------------------------------------------------------


def subject_of(value: str | bytes, extra: list[tuple[str, str | bytes]] | None = None) -> str:
    return parse(make([*without("Subject"), *(extra or []), ("Subject", value)])).subject


def test_subject_folded_lines_become_one() -> None:
    # A folded subject, or one with CR/LF inside an encoded word, is one line.
    assert subject_of("Printer\r\n on\r\n\tfire") == "Printer on fire"
    assert subject_of("=?utf-8?q?Printer=0D=0ABcc=3A_evil=40x?=") == "Printer Bcc: evil@x"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("=?utf-8?b?0J/RgNC40L3RgtC10YAg0LPQvtGA0LjRgg==?=", "Принтер горит"),
        ("=?koi8-r?q?=F0=D2=C9=CE=D4=C5=D2_=C7=CF=D2=C9=D4?=", "Принтер горит"),
        ("=?windows-1251?b?z/Do7fLl8CDj7vDo8g==?=", "Принтер горит"),
        ("Re: =?utf-8?q?Gr=C3=BC=C3=9Fe?= [SUP-1]", "Re: Grüße [SUP-1]"),
        ("=?utf-8?b?0J/R?= =?utf-8?b?gNC4?=", "При"),  # a character split over two words
        ("=?x-unknown?q?caf=C3=A9?=", "café"),  # unknown charset: UTF-8
        ("=?utf-8?b?z/Do7fLl8A==?=", "Принтер"),  # labelled UTF-8, really windows-1251
        ("=?utf-8?b?!!!?= x", "=?utf-8?b?!!!?= x"),  # undecodable: kept
    ],
)
def test_encoded_subjects(value: str, expected: str) -> None:
    # RFC 2047 subjects decode, including split characters and mislabelled charsets.
    assert subject_of(value) == expected


@pytest.mark.parametrize(
    "raw_value, expected",
    [
        ("Принтер горит".encode(), "Принтер горит"),
        ("Принтер горит".encode("cp1251"), "Принтер горит"),
        ("тест тест".encode("koi8-r"), "тест тест"),
        ("Größe".encode("latin-1"), "Größe"),
    ],
)
def test_raw_8bit_subjects(raw_value: bytes, expected: str) -> None:
    # Raw 8-bit subjects in UTF-8, windows-1251, KOI8-R or Latin-1 decode without a label.
    assert subject_of(raw_value) == expected


def test_raw_8bit_headers_share_one_charset_guess() -> None:
    # The sender name and subject in undeclared windows-1251 decode alike.
    raw = make(
        [
            ("From", "Иван Петров <ivan@example.ru>".encode("cp1251")),
            ("Subject", "Счёт".encode("cp1251")),
            ("Message-ID", "<m@x>"),
        ]
    )
    msg = parse(raw)
    assert msg.subject == "Счёт"
    assert msg.from_addr == Address("ivan@example.ru", "Иван Петров")


def test_windows_1251_body() -> None:
    # A windows-1251 text/plain body decodes to Cyrillic.
    headers = [*without("Content-Type"), ("Content-Type", 'text/plain; charset="windows-1251"')]
    headers += [("Content-Transfer-Encoding", "8bit")]
    msg = parse(make(headers, "Здравствуйте! Принтер горит.\r\n".encode("cp1251")))
    assert msg.text.strip() == "Здравствуйте! Принтер горит."


def test_koi8r_quoted_printable_body() -> None:
    # A KOI8-R quoted-printable body decodes to Cyrillic.
    qp = "".join(f"={b:02X}" if b > 0x7F else chr(b) for b in "Привет, мир".encode("koi8-r"))
    headers = [*without("Content-Type"), ("Content-Type", "text/plain; charset=koi8-r")]
    msg = parse(make([*headers, ("Content-Transfer-Encoding", "quoted-printable")], qp + "\r\n"))
    assert msg.text.strip() == "Привет, мир"


@pytest.mark.parametrize("label", [None, "utf-8", "us-ascii"])
def test_undeclared_or_mislabelled_cp1251_body(label: str | None) -> None:
    # An 8-bit windows-1251 body with no charset, or a wrong one, still decodes to Cyrillic.
    ctype = "text/plain" if label is None else f"text/plain; charset={label}"
    headers = [*without("Content-Type"), ("Content-Type", ctype), ("Content-Transfer-Encoding", "8bit")]
    msg = parse(make(headers, "Добрый день, принтер снова горит.\r\n".encode("cp1251")))
    assert msg.text.strip() == "Добрый день, принтер снова горит."
    assert "\ufffd" not in msg.text


def test_utf8_body_under_single_byte_label_is_utf8() -> None:
    # UTF-8 bytes labelled windows-1251 are read as UTF-8, not as "ProtecciГіn".
    headers = [*without("Content-Type"), ("Content-Type", "text/plain; charset=windows-1251")]
    msg = parse(make([*headers, ("Content-Transfer-Encoding", "8bit")], "Protección, Привет\r\n".encode()))
    assert msg.text.strip() == "Protección, Привет"
    assert "body: charset re-decoded" in msg.defects


def test_iso_2022_jp_7bit_body() -> None:
    # A 7bit ISO-2022-JP body (escape sequences) is decoded with its charset.
    headers = [*without("Content-Type"), ("Content-Type", "text/plain; charset=iso-2022-jp")]
    body = "すみません。\r\n".encode("iso2022_jp")
    msg = parse(make([*headers, ("Content-Transfer-Encoding", "7bit")], body))
    assert msg.text.strip() == "すみません。"


def test_undeclared_body_charset_follows_raw_headers() -> None:
    # A body without MIME headers is decoded with the charset guessed for the raw headers.
    raw = make([("From", "a@example.ru"), ("Subject", "тест тест".encode("koi8-r")), ("Message-ID", "<k@x>")])
    msg = parse(raw.replace(b"Hello.", "ТЕСТ".encode("koi8-r")))
    assert (msg.subject, msg.text.strip()) == ("тест тест", "ТЕСТ")


def test_subject_absent_is_empty_string() -> None:
    # No Subject header gives "".
    assert parse(make(without("Subject"))).subject == ""


# --- addresses ------------------------------------------------------------------------


def test_addresses_lower_cased_names_decoded_non_addresses_skipped() -> None:
    # Emails are lower-cased, names decoded, groups and entries without '@' skipped.
    raw = make(
        [
            ("From", "=?utf-8?b?0JDQvdC90LA=?= <ANNA@Example.ru>"),
            ("To", "undisclosed-recipients:;"),
            ("Cc", "Team: a@x.org, B@X.org;, nobody, <c@x.org>"),
            ("Message-ID", "<m@x>"),
        ]
    )
    msg = parse(raw)
    assert msg.from_addr == Address("anna@example.ru", "Анна")
    assert msg.to == []
    assert [a.email for a in msg.cc] == ["a@x.org", "b@x.org", "c@x.org"]


def test_broken_from_still_gives_an_address() -> None:
    # "From: Big Bug bb@bug.com" (no brackets) still yields the sender's address.
    msg = parse(make([("From", "Big Bug BB@bug.com"), ("Message-ID", "<m@x>")]))
    assert msg.from_addr == Address("bb@bug.com", "")


def test_no_from_gives_none() -> None:
    # A message without From has from_addr None.
    assert parse(make(without("From"))).from_addr is None


def test_thousands_of_recipients_stay_fast() -> None:
    # 5,000 recipients parse completely and in well under a second or two.
    to = ", ".join(f'"User {i}" <User{i}@Example.com>' for i in range(5000))
    raw = make([*without("To"), ("To", to)])
    started = time.perf_counter()
    msg = parse(raw)
    elapsed = time.perf_counter() - started
    assert len(msg.to) == 5000 and msg.to[4999] == Address("user4999@example.com", "User 4999")
    assert elapsed < 3.0


# --- date -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["yesterday", "Tue, 33 Mar 2026 09:15:00 +0300", "Tue, 03 Mar 2026 25:61:00 +0300", ""]
)
def test_invalid_date_is_none(value: str) -> None:
    # An unparseable Date gives None (and a defect when the header was there).
    msg = parse(make([*without("Date"), ("Date", value)]))
    assert msg.date is None
    if value:
        assert "date: unparseable" in msg.defects


def test_date_minus_zero_is_utc_and_missing_date_is_none() -> None:
    # "-0000" (no zone information) is read as UTC; no Date header gives None.
    msg = parse(make([*without("Date"), ("Date", "3 Mar 2026 06:15:00 -0000")]))
    assert msg.date == datetime(2026, 3, 3, 6, 15, tzinfo=timezone.utc)
    assert parse(make(without("Date"))).date is None


def test_date_keeps_negative_offset() -> None:
    # The sender's offset is kept, for time-zone inference later.
    msg = parse(make([*without("Date"), ("Date", "Mon, 2 Mar 2026 23:00:00 -0500")]))
    assert msg.date is not None and msg.date.utcoffset() == timedelta(hours=-5)


# --- bodies -----------------------------------------------------------------------------


def test_html_only_message_gets_text_rendering() -> None:
    # With no text/plain part, text is rendered from the HTML: tags and scripts gone, breaks kept.
    markup = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body>"
        "<p>Hello&nbsp;Ann,</p><div>The printer &amp; the scanner<br>are   on fire.</div>"
        "<script>alert(1)</script><ul><li>one</li><li>two</li></ul></body></html>"
    )
    headers = [*without("Content-Type"), ("Content-Type", "text/html; charset=utf-8")]
    msg = parse(make(headers, markup))
    assert msg.html.strip() == markup
    assert msg.text == "Hello\u00a0Ann,\n\nThe printer & the scanner\nare on fire.\n\none\ntwo"


def test_alternative_uses_text_part_and_keeps_html() -> None:
    # multipart/alternative: text is the text/plain part, html the HTML part.
    ctype, body = multipart(
        [
            b"Content-Type: text/plain; charset=utf-8\r\n\r\nPlain words.\r\n",
            b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Rich words.</p>\r\n",
        ],
        subtype="alternative",
    )
    msg = parse(make([*without("Content-Type"), ("Content-Type", ctype)], body))
    assert msg.text.strip() == "Plain words."
    assert msg.html.strip() == "<p>Rich words.</p>"


def test_html_to_text_never_raises_on_broken_markup() -> None:
    # Broken markup still renders to text.
    assert "text" in html_to_text("<div><p>text<![CDATA[ <b>unclosed <a href='")


def test_nul_bytes_removed() -> None:
    # NUL bytes in the body and in headers never reach the Inbound.
    raw = make([*without("Subject"), ("Subject", b"Prin\x00ter")], b"Hel\x00lo\r\n")
    msg = parse(raw)
    assert "\x00" not in msg.text and msg.text.startswith("Hello")
    assert msg.subject == "Printer"
    assert all("\x00" not in v for values in msg.headers.values() for v in values)


# --- attachments ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "filename_header, expected",
    [
        ('filename="../../etc/passwd"', "passwd"),
        ('filename="C:\\\\evil\\\\x.exe"', "x.exe"),
        ('filename="C:\\evil\\x.exe"', "x.exe"),
        ('filename="=?utf-8?b?0L7RgtGH0ZHRgi5wZGY=?="', "отчёт.pdf"),
        ("filename*=utf-8''%D0%BE%D1%82%D1%87%D1%91%D1%82.pdf", "отчёт.pdf"),
        ('filename=".bashrc"', "bashrc"),
        ('filename=".."', "attachment-1.bin"),
        ('filename="..\\\\..\\\\"', "attachment-1.bin"),
        ('filename="invoice\u202etxt.exe"', "invoice_txt.exe"),
        ('filename="a\tb:c?.txt"', "a_b_c_.txt"),
        ('filename="CON.txt"', "_CON.txt"),
    ],
)
def test_attachment_filenames_are_safe(filename_header: str, expected: str) -> None:
    # Attachment names are basenames without traversal, controls or tricks; fallback when empty.
    data = b"\x00\x01binary\xff" * 10
    msg = parse(with_attachments(attachment_part(filename_header, data)))
    assert len(msg.attachments) == 1
    attachment = msg.attachments[0]
    assert attachment.filename == expected
    assert attachment.data == data
    assert attachment.content_type == "application/octet-stream"


def test_attachment_nameless_gets_stable_name() -> None:
    # A nameless attachment is named from its position, the same on every parse.
    part = b"Content-Type: text/plain\r\nContent-Disposition: attachment\r\n\r\nnotes\r\n"
    raw = with_attachments(part)
    first, second = parse(raw).attachments, parse(raw).attachments
    assert first[0].filename == second[0].filename == "attachment-1.txt"
    assert first[0].data.strip() == b"notes"


def test_attachment_inline_image_named_by_type_not_by_content_id() -> None:
    # An inline image with only a Content-ID is named attachment-<n>.<ext>, never "<id@host>".
    encoded = base64.encodebytes(b"\x89PNG\r\n\x1a\n").replace(b"\n", b"\r\n")
    part = b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\nContent-ID: <img1@x>\r\n\r\n" + encoded
    msg = parse(with_attachments(part))
    assert [(a.filename, a.content_type, a.data) for a in msg.attachments] == [
        ("attachment-1.png", "image/png", b"\x89PNG\r\n\x1a\n")
    ]


def test_attachment_quoted_printable_decoded_to_bytes() -> None:
    # Non-base64 attachments come out as their decoded bytes too.
    part = (
        b"Content-Type: text/csv; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        b'Content-Disposition: attachment; filename="t.csv"\r\n\r\na,=C3=BC\r\n'
    )
    msg = parse(with_attachments(part))
    assert msg.attachments[0].filename == "t.csv"
    assert msg.attachments[0].data.rstrip() == "a,ü".encode()


@pytest.mark.parametrize(
    "name, expected",
    [
        ("report.pdf", "report.pdf"),
        ("/abs/path/report.pdf", "report.pdf"),
        ("..\\..\\windows\\system32\\x.dll", "x.dll"),
        ("a\x00b.txt", "ab.txt"),
        ("...hidden", "hidden"),
        ("a..b.txt", "a.b.txt"),
        ("trailing. . .", "trailing"),
        ("", "attachment-3.bin"),
        (None, "attachment-3.bin"),
        ("...", "attachment-3.bin"),
        ("???", "attachment-3.bin"),
        ("nul", "_nul"),
    ],
)
def test_safe_filename(name: str | None, expected: str) -> None:
    # safe_filename gives a basename that is safe to store and show, or a positional fallback.
    assert safe_filename(name, 3) == expected


def test_safe_filename_length_limited_keeps_extension() -> None:
    # Long names are cut to 200 UTF-8 bytes at a character boundary, extension kept.
    name = "ж" * 300 + ".docx"
    safe = safe_filename(name, 1)
    assert safe.endswith(".docx") and len(safe.encode()) <= 200
    safe.encode("utf-8").decode("utf-8")  # whole characters only


# --- robustness -------------------------------------------------------------------------


def nested_multipart(depth: int) -> bytes:
    head = b"From: a@example.com\r\nSubject: bomb\r\nMessage-ID: <bomb@x>\r\n"
    opening = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(depth)))
    return head + opening + b"Content-Type: text/plain\r\n\r\nboom" + closing


def nested_rfc822(depth: int) -> bytes:
    head = b"From: a@example.com\r\nSubject: bomb\r\nMessage-ID: <bomb@x>\r\n"
    return head + b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n" * depth + b"\r\nboom\r\n"


def test_moderate_nesting_parses() -> None:
    # Nesting within the limit parses normally.
    msg = parse(nested_multipart(10))
    assert msg.text.strip() == "boom"


@pytest.mark.parametrize("depth", [MAX_MIME_DEPTH + 5, 300, 5000])
def test_multipart_bomb_is_parse_error(depth: int) -> None:
    # A multipart bomb deeper than the limit is a ParseError, never a RecursionError.
    with pytest.raises(ParseError, match=f"MIME nesting deeper than {MAX_MIME_DEPTH}"):
        parse(nested_multipart(depth))


@pytest.mark.parametrize("depth", [MAX_MIME_DEPTH + 5, 20000])
def test_rfc822_bomb_is_parse_error(depth: int) -> None:
    # Endlessly nested message/rfc822 parts are a ParseError too.
    with pytest.raises(ParseError, match="MIME nesting deeper than"):
        parse(nested_rfc822(depth))


@pytest.mark.parametrize("raw", [b"", b"   \r\n\r\n  ", b"\r\n"])
def test_empty_input_is_parse_error(raw: bytes) -> None:
    # Empty or blank input is a ParseError.
    with pytest.raises(ParseError):
        parse(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(range(256)),
        b"Just a body, no headers at all.\nSecond line.\n",
        b"\r\n\r\nJust a body after blank lines.\n",
    ],
)
def test_input_without_headers_is_parse_error(raw: bytes) -> None:
    # Input with no header field is not a mail: ParseError, and the caller quarantines it.
    with pytest.raises(ParseError, match="no header fields"):
        parse(raw)


@pytest.mark.parametrize(
    "junk", [b"\r\n", b"\n\n", b"\xef\xbb\xbf", b">From ann@example.com Tue Mar  3 09:15:02 2026\n"]
)
def test_junk_before_the_header_block_is_skipped(junk: bytes) -> None:
    # A BOM, blank lines or an escaped mbox line in front of the headers does not hide them.
    msg = parse(junk + make(BASIC))
    assert (msg.subject, msg.message_id) == ("Printer on fire", "<ABC.123@Mail.Example.COM>")
    assert msg.content_hash != ""


def test_non_bytes_is_parse_error() -> None:
    # A str instead of bytes is refused with ParseError too.
    with pytest.raises(ParseError):
        parse("From: a@example.com\r\n\r\nx")  # type: ignore[arg-type]


def test_obsolete_space_before_colon_is_repaired() -> None:
    # RFC 5322 obsolete "Name : value" fields are read (the stdlib alone sees only a body).
    msg = parse(b"From  : Ann <ann@example.com>\r\nSubject  : Hello\r\nMessage-ID : <o@x>\r\n\r\nbody\r\n")
    assert (msg.subject, msg.message_id, msg.from_addr) == ("Hello", "<o@x>", Address("ann@example.com", "Ann"))


def test_mailparser_bug_falls_back_to_stdlib() -> None:
    # A message mail-parser 4.8 crashes on (truncated base64 word in From) is parsed by the stdlib alone.
    raw = with_attachments(attachment_part('filename="r.pdf"', b"%PDF-1.4 x", "application/pdf"))
    raw = raw.replace(b"From: a@example.com", b"From: =?utf-8?b?a?= <Ann@Example.com>")
    with pytest.raises(Exception, match="Base64 decoding error"):
        mailparser.MailParser.from_bytes(raw)  # the upstream bug this works around
    msg = parse(raw)
    assert msg.from_addr == Address("ann@example.com", "=?utf-8?b?a?=")
    assert msg.text.strip() == "See attached."
    assert [(a.filename, a.content_type, a.data) for a in msg.attachments] == [
        ("r.pdf", "application/pdf", b"%PDF-1.4 x")
    ]
    assert any(d.startswith("mail-parser failed (HeaderParseError") for d in msg.defects)


def test_mailparser_recursion_error_is_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # mail-parser's own recursion error is reported as too deep nesting, not retried.
    def too_deep(raw: bytes) -> None:
        raise mailparser.exceptions.MailParserRecursionError("too deep")

    monkeypatch.setattr(mailparser.MailParser, "from_bytes", staticmethod(too_deep))
    with pytest.raises(ParseError, match="MIME nesting deeper than"):
        parse(make(BASIC))


def test_any_other_failure_becomes_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # When even the stdlib fallback fails, the exception is wrapped into ParseError with its reason.
    def explode(raw: bytes) -> None:
        raise LookupError("codec exploded")

    def explode_too(raw: bytes) -> None:
        raise ValueError("stdlib exploded")

    monkeypatch.setattr(mailparser.MailParser, "from_bytes", staticmethod(explode))
    monkeypatch.setattr("mailbot.parse.message_from_bytes", explode_too)
    with pytest.raises(ParseError, match="ValueError: stdlib exploded"):
        parse(make(BASIC))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes_only_ever_parse_error(raw: bytes) -> None:
    # Arbitrary bytes give an Inbound or a ParseError, nothing else.
    try:
        msg = parse(raw)
    except ParseError:
        return
    assert msg.message_id and isinstance(msg.subject, str)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_mail_only_ever_parse_error(data: st.DataObject) -> None:
    # A real message with random bytes spliced in gives an Inbound or a ParseError, nothing else.
    base = bytearray(with_attachments(attachment_part('filename="r.bin"', b"x" * 100)))
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(base)))
        base[position:position] = data.draw(st.binary(min_size=1, max_size=12))
    try:
        msg = parse(bytes(base))
    except ParseError:
        return
    assert msg.message_id and isinstance(msg.subject, str)
    assert "\x00" not in msg.text and "\x00" not in msg.subject
    msg.text.encode("utf-8")
    msg.subject.encode("utf-8")


def test_encoded_display_name_cannot_smuggle_an_address() -> None:
    # An encoded name holding ":" and "@" stays a name; the real address is the one in <>.
    raw = (b"From: =?utf-8?q?Eve=0D=0ABcc:_x@evil.test?= <eve@example.test>\r\n"
           b"To: =?utf-8?q?Smith=2C_John?= <john@x.test>, =?utf-8?b?0J7Qu9C10L3QsA==?= <o@x.ua>\r\n"
           b"Subject: hi\r\nMessage-ID: <s@x>\r\n\r\nbody\r\n")
    inbound = parse(raw)
    assert inbound.from_addr is not None and inbound.from_addr.email == "eve@example.test"
    assert "\n" not in inbound.from_addr.name
    assert [(a.email, a.name) for a in inbound.to] == [("john@x.test", "Smith, John"),
                                                      ("o@x.ua", "Олена")]
