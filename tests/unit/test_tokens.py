"""Case tokens in subjects: finding them, cleaning subjects, building outgoing subjects."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbot.tokens import (
    MAX_SUBJECT_CHARS,
    clean_subject,
    decode_bytes,
    decode_encoded_words,
    find_token,
    format_token,
    guess_charset,
    strip_reply_prefixes,
    subject_with_token,
)


def b_word(text: str, charset: str = "utf-8") -> str:
    return f"=?{charset}?b?{base64.b64encode(text.encode(charset)).decode('ascii')}?="


def q_word(text: str, charset: str) -> str:
    encoded = "".join(f"={b:02X}" if b > 0x7F or chr(b) in "=?_ " else chr(b) for b in text.encode(charset))
    return f"=?{charset}?q?{encoded}?="


# --- format_token -------------------------------------------------------------


def test_format_token() -> None:
    # A token is the prefix and the number in square brackets.
    assert format_token("SUP", 123) == "[SUP-123]"
    assert format_token("help_desk-eu", 7) == "[help_desk-eu-7]"


@pytest.mark.parametrize("prefix, number", [("SUP", 0), ("SUP", -1), ("SUP", 10**18), ("S P", 1), ("SÜP", 1), ("", 1)])
def test_format_token_rejects_what_find_token_would_not_read(prefix: str, number: int) -> None:
    # Numbers < 1 or of more than 18 digits and prefixes outside [A-Za-z0-9_-] are refused.
    with pytest.raises(ValueError):
        format_token(prefix, number)


def test_format_token_rejects_bool() -> None:
    # True is an int to Python but never a case number.
    with pytest.raises(ValueError):
        format_token("SUP", True)


# --- find_token -----------------------------------------------------------------


@pytest.mark.parametrize(
    "subject, expected",
    [
        ("[SUP-123] Printer on fire", 123),
        ("Printer on fire [SUP-123]", 123),
        ("Re: Printer on fire [SUP-12]", 12),
        ("RE: AW: Re[3]: Отв: Fwd: Printer [SUP-12]", 12),
        ("AW: WG: Drucker [SUP-12]", 12),
        ("Sv: Skrivare [SUP-12]", 12),
        ("Відп: Принтер [SUP-12]", 12),
        ("回复：打印机 [SUP-12]", 12),
        ("[sup-12] lower-case prefix", 12),
        ("[Sup-12] mixed-case prefix", 12),
        ("[ SUP-12 ] spaces inside", 12),
        ("[\u00a0SUP-12\u00a0] no-break spaces inside", 12),
        ("x[SUP-12]y glued to words", 12),
        ("[Fwd: Printer [SUP-44]]", 44),
        ("[SUP-999999999999999999]", 999999999999999999),
    ],
)
def test_find_token_finds(subject: str, expected: int) -> None:
    # The token is found wherever it stands, whatever the case of the prefix.
    assert find_token(subject, "SUP") == expected


@pytest.mark.parametrize(
    "subject",
    [
        "",
        "Printer on fire",
        "[ABC-12] another system's token",
        "[SUPPORT-12] a longer prefix",
        "[XSUP-12] a prefix inside a word",
        "[SUP12] no dash",
        "[SUP-] no number",
        "[SUP-12 no closing bracket",
        "SUP-12 no brackets",
        "[SUP-012] leading zero",
        "[SUP-0] zero",
        "[SUP-1234567890123456789] nineteen digits",
        "[SUP-１２] full-width digits",
        "[SUP - 12] spaces around the dash",
        "[ſUP-12] long s",
    ],
)
def test_find_token_ignores_non_tokens(subject: str) -> None:
    # Other prefixes, malformed tokens and numbers mailbot never writes are not tokens.
    assert find_token(subject, "SUP") is None


def test_find_token_first_token_wins() -> None:
    # A forwarded case carries the newest token first, so the first token wins.
    assert find_token("Re: [SUP-9] Fwd: [SUP-3] Printer", "SUP") == 9


def test_find_token_skips_invalid_then_finds_valid() -> None:
    # A non-token in front does not hide a real token behind it.
    assert find_token("[SUP-007] [ABC-1] [SUP-8]", "SUP") == 8


def test_find_token_prefix_with_dash_and_regex_characters_is_escaped() -> None:
    # The prefix is matched literally: "." in a prefix is rejected, "-" and "_" work.
    assert find_token("Re: [help_desk-eu-5] x", "help_desk-eu") == 5
    assert find_token("Re: [help_desk-euX5] x", "help_desk-eu") is None
    with pytest.raises(ValueError):
        find_token("[S.P-1]", "S.P")


def test_find_token_in_utf8_base64_encoded_word() -> None:
    # A subject that still carries a base64 encoded word is decoded before searching.
    assert find_token(b_word("Привет [SUP-77]"), "SUP") == 77


def test_find_token_in_koi8r_q_encoded_word() -> None:
    # A KOI8-R quoted-printable encoded word carrying a token is decoded too.
    assert find_token("Отв: " + q_word("Принтер [SUP-5]", "koi8-r"), "SUP") == 5


def test_find_token_split_over_encoded_words() -> None:
    # A token split over two adjacent encoded words is joined before searching.
    assert find_token(b_word("Re: [SUP-") + " " + b_word("31] x"), "SUP") == 31


def test_find_token_tolerates_broken_encoded_words() -> None:
    # Broken encoded words stay text and never raise; a token next to them is still found.
    assert find_token("=?utf-8?b?!!!?= =?bogus-charset?q?=FF?= [SUP-6]", "SUP") == 6
    assert find_token("=?utf-8?x?abc?= =?utf-8?b?", "SUP") is None


# --- strip_reply_prefixes -----------------------------------------------------


@pytest.mark.parametrize(
    "subject, expected",
    [
        ("Re: x", "x"),
        ("RE: x", "x"),
        ("re: x", "x"),
        ("Re:x", "x"),
        ("Re : x", "x"),
        ("Re[2]: x", "x"),
        ("Re(2): x", "x"),
        ("Re^2: x", "x"),
        ("AW: x", "x"),
        ("Aw: x", "x"),
        ("Sv: x", "x"),
        ("SV: x", "x"),
        ("Antw: x", "x"),
        ("Odp: x", "x"),
        ("Vs: x", "x"),
        ("VS: x", "x"),
        ("Ynt: x", "x"),
        ("Ris: x", "x"),
        ("R: x", "x"),
        ("Rif: x", "x"),
        ("Réf: x", "x"),
        ("RÉF: x", "x"),
        ("Fwd: x", "x"),
        ("FW: x", "x"),
        ("Fw: x", "x"),
        ("WG: x", "x"),
        ("TR: x", "x"),
        ("Enc: x", "x"),
        ("Doorst: x", "x"),
        ("Pd: x", "x"),
        ("ПЕРЕСЛ: x", "x"),
        ("Отв: x", "x"),
        ("ОТВ: x", "x"),
        ("Ответ: x", "x"),
        ("Відп: x", "x"),
        ("Відповідь: x", "x"),
        ("Пересл: x", "x"),
        ("Переслано: x", "x"),
        ("回复：x", "x"),
        ("回复: x", "x"),
        ("答复：x", "x"),
        ("转发：x", "x"),
        ("返信: x", "x"),
        ("転送：x", "x"),
        ("RE: AW: Re[3]: Отв: Fwd: x", "x"),
        ("Re: Re: Re: Re: x", "x"),
        ("Re:Fwd:Re: x", "x"),
        ("[Fwd: x]", "x"),
        ("[Fwd: Re: x]", "x"),
        ("Re: [Fwd: x]", "x"),
        ("x (fwd)", "x"),
        ("  Re:   x  ", "x"),
    ],
)
def test_strip_reply_prefixes(subject: str, expected: str) -> None:
    # Leading reply/forward prefixes of every client and language go, repeated and mixed.
    assert strip_reply_prefixes(subject) == expected


@pytest.mark.parametrize(
    "subject",
    ["Reply: x", "Re x", "Review: x", "Regarding x", "Fwdx: y", "Record: 12", "x Re: y", "Antwerp: trip", "Trip: TR"],
)
def test_strip_reply_prefixes_leaves_ordinary_words(subject: str) -> None:
    # Words that merely start like a prefix, or a prefix not at the start, stay.
    assert strip_reply_prefixes(subject) == subject


@pytest.mark.parametrize("subject", ["Re:", "Re: Fwd:", "[Fwd: ]", "  ", ""])
def test_strip_reply_prefixes_only_prefixes_gives_empty(subject: str) -> None:
    # A subject made only of prefixes becomes "", the caller says "(no subject)".
    assert strip_reply_prefixes(subject) == ""


# --- clean_subject --------------------------------------------------------------


@pytest.mark.parametrize(
    "subject, expected",
    [
        ("Re: [SUP-9] Fwd: [SUP-3] Printer", "Printer"),
        ("[SUP-12] Re: Printer", "Printer"),
        ("Re: Printer   on\tfire [SUP-12]", "Printer on fire"),
        ("Re: [ABC-1] Printer [SUP-2]", "[ABC-1] Printer"),
        ("[sup-2] Printer", "Printer"),
        ("[SUP-012] Printer", "[SUP-012] Printer"),
        ("Re: [SUP-1]", ""),
        ("[Fwd: [SUP-3] Printer]", "Printer"),
        (b_word("Re: Принтер [SUP-4]"), "Принтер"),
        ("[[SUP-1]SUP-5] Printer", "Printer"),
    ],
)
def test_clean_subject(subject: str, expected: str) -> None:
    # Tokens of our prefix, prefixes and extra whitespace go; other tokens stay.
    assert clean_subject(subject, "SUP") == expected


# --- subject_with_token --------------------------------------------------------


def test_subject_with_token_reply() -> None:
    # A reply's subject is "Re: <clean subject> [TOKEN]", old prefixes and tokens gone.
    assert subject_with_token("AW: Re: [SUP-12] Printer", "SUP", 12) == "Re: Printer [SUP-12]"


def test_subject_with_token_new_mail() -> None:
    # reply=False leaves out "Re: ".
    assert subject_with_token("Printer", "SUP", 12, reply=False) == "Printer [SUP-12]"


@pytest.mark.parametrize("subject", ["", "   ", "Re:", "Re: [SUP-12]", "\r\n"])
def test_subject_with_token_empty(subject: str) -> None:
    # An empty subject becomes "(no subject)".
    assert subject_with_token(subject, "SUP", 12) == "Re: (no subject) [SUP-12]"


@pytest.mark.parametrize(
    "subject",
    ["x\r\nBcc: evil@x", "x\nBcc: evil@x", "x\rBcc: evil@x", "x\u2028Bcc: evil@x", "x\x00\x0b\x1b\x7f\x85Bcc: evil@x"],
)
def test_subject_with_token_header_injection(subject: str) -> None:
    # CR, LF and every other control or line separator become spaces: one single line.
    result = subject_with_token(subject, "SUP", 1)
    assert result == "Re: x Bcc: evil@x [SUP-1]"
    assert result.splitlines() == [result]


def test_subject_with_token_injection_in_encoded_word() -> None:
    # A CR/LF hidden in an encoded word cannot split the header either.
    result = subject_with_token(b_word("x\r\nBcc: evil@x"), "SUP", 1)
    assert "\r" not in result and "\n" not in result
    assert result == "Re: x Bcc: evil@x [SUP-1]"


def test_subject_with_token_removes_bidi_overrides() -> None:
    # Bidi override characters, which make a subject display as something else, go.
    assert subject_with_token("invoice\u202etxt.exe", "SUP", 1) == "Re: invoicetxt.exe [SUP-1]"


def test_subject_with_token_length_limited() -> None:
    # A long subject is cut to MAX_SUBJECT_CHARS with "…" and the token survives.
    result = subject_with_token("word " * 200, "SUP", 5, reply=False)
    text, _, token = result.rpartition(" ")
    assert token == "[SUP-5]"
    assert len(text) <= MAX_SUBJECT_CHARS and text.endswith("word…")


def test_subject_with_token_cut_keeps_combining_marks() -> None:
    # The cut never separates a letter from its combining accent.
    subject = "q\u0301" * 300  # q + combining acute: no precomposed form, NFC keeps two
    text = subject_with_token(subject, "SUP", 5, reply=False).rsplit(" ", 1)[0]
    assert len(text) <= MAX_SUBJECT_CHARS
    body = text.rstrip("…")
    assert body and body[-1] == "\u0301"


def test_subject_with_token_double_encoded_token_cannot_win() -> None:
    # Encoded words that decode to encoded words of another token cannot hijack threading.
    inner = b_word("[SUP-5]")
    subject = b_word(inner)
    result = subject_with_token(subject, "SUP", 7)
    assert find_token(result, "SUP") == 7


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=1, max_value=10**18 - 1))
def test_subject_with_token_round_trip(subject: str, number: int) -> None:
    # Whatever the subject, the outgoing subject is one line and finds its own token.
    result = subject_with_token(subject, "SUP", number)
    assert find_token(result, "SUP") == number
    assert len(result.splitlines()) == 1 and result == result.strip()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_clean_subject_is_idempotent(subject: str) -> None:
    # Cleaning a clean subject changes nothing.
    once = clean_subject(subject, "SUP")
    assert clean_subject(once, "SUP") == once


# --- decoding helpers -----------------------------------------------------------


def test_decode_encoded_words_keeps_unicode_text() -> None:
    # Already-decoded non-ASCII text around an encoded word stays as it is.
    assert decode_encoded_words("Отв: " + b_word("Привет") + " x") == "Отв: Привет x"


def test_decode_encoded_words_drops_space_between_words() -> None:
    # Whitespace between two encoded words is not part of the text (RFC 2047 6.2).
    assert decode_encoded_words(q_word("Hello", "utf-8") + "  " + q_word("World", "utf-8")) == "HelloWorld"


def test_decode_encoded_words_mislabelled_charset() -> None:
    # An encoded word labelled utf-8 but holding windows-1251 bytes still decodes to Cyrillic.
    raw = base64.b64encode("Привет, мир".encode("cp1251")).decode()
    assert decode_encoded_words(f"=?utf-8?b?{raw}?=") == "Привет, мир"


def test_decode_encoded_words_unknown_charset() -> None:
    # An unknown charset label falls back to UTF-8.
    assert decode_encoded_words(b_word("Grüße").replace("utf-8", "x-unknown")) == "Grüße"


@pytest.mark.parametrize(
    "text, charset",
    [("Привет, как дела?", "cp1251"), ("Привет, как дела?", "koi8_r"), ("Müller und Söhne", "cp1252")],
)
def test_guess_charset(text: str, charset: str) -> None:
    # Undeclared 8-bit Cyrillic and Western text is told apart.
    assert guess_charset(text.encode(charset)) == charset


def test_decode_bytes_prefers_utf8_over_weak_labels() -> None:
    # Valid UTF-8 labelled us-ascii or iso-8859-1 is read as UTF-8.
    assert decode_bytes("Grüße".encode(), "us-ascii") == "Grüße"
    assert decode_bytes("Grüße".encode(), "iso-8859-1") == "Grüße"


def test_decode_bytes_uses_declared_charset() -> None:
    # A declared charset that decodes is used (through its superset for gb2312).
    assert decode_bytes("Привет".encode("koi8-r"), "koi8-r") == "Привет"
    assert decode_bytes("测试".encode("gb18030"), "gb2312") == "测试"
    assert decode_bytes("テスト".encode("iso-2022-jp"), "ISO-2022-JP") == "テスト"


def test_decode_bytes_superset_then_declared() -> None:
    # iso-8859-1 is read as windows-1252, and as itself where windows-1252 has no character.
    assert decode_bytes(b"\x93caf\xe9\x94", "iso-8859-1") == "\u201ccafé\u201d"
    assert decode_bytes(b"caf\xe9 \x81", "iso-8859-1") == "café \x81"


def test_decode_bytes_iso_2022_jp_under_ascii_label() -> None:
    # ISO-2022-JP escape sequences are recognised even under a us-ascii label.
    assert decode_bytes("すみません".encode("iso2022_jp"), "us-ascii") == "すみません"


def test_decode_bytes_hint_before_guess() -> None:
    # A hint (the headers' charset) is tried before guessing from the bytes alone.
    data = "ТЕСТ".encode("koi8-r")
    assert decode_bytes(data, None, hint="koi8-r") == "ТЕСТ"


def test_decode_bytes_never_raises() -> None:
    # Garbage under any label decodes to some text.
    assert isinstance(decode_bytes(bytes(range(256)), "utf-16"), str)
    assert isinstance(decode_bytes(bytes(range(256)), "base64"), str)
    assert isinstance(decode_bytes(bytes(range(256)), None), str)
