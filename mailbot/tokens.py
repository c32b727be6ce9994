"""Case tokens in subjects (``[SUP-123]``) and the text helpers they need.

Threading looks first for the case token in a subject (DESIGN.md, "thread"), so the
token must survive whatever mail clients do to a subject on the way back: reply and
forward prefixes in many languages (``Re:``, ``AW:``, ``Отв:``, ``回复：``), the brackets
around forwarded subjects (``[Fwd: …]``) and RFC 2047 encoded words that a client or
a list server failed to decode. Everything here is a pure function of its arguments.

Public API::

    format_token(prefix, number) -> "[SUP-123]"
    find_token(subject, prefix) -> int | None
    strip_reply_prefixes(subject) -> str
    clean_subject(subject, prefix) -> str
    subject_with_token(subject, prefix, number, reply=True) -> str
    decode_encoded_words(text) -> str       # RFC 2047, never raises
    decode_bytes(data, charset=None, *, hint=None) -> str  # utf-8, declared, hint, guess
    guess_charset(data) -> str               # cp1251 / koi8_r / koi8_u / cp1252

The two decoding helpers live here rather than in ``mailbot.parse`` because both the
parser (headers, bodies without a usable charset) and ``find_token`` (subjects that
still carry encoded words) need them, and this module must not import mail-parser.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re
import unicodedata

__all__ = [
    "MAX_SUBJECT_CHARS",
    "NO_SUBJECT",
    "clean_subject",
    "decode_bytes",
    "decode_encoded_words",
    "find_token",
    "format_token",
    "guess_charset",
    "strip_reply_prefixes",
    "subject_with_token",
]

#: Subject text kept before the token in the subjects mailbot sends (characters).
MAX_SUBJECT_CHARS = 200
#: What an outgoing subject says when the customer's subject was empty.
NO_SUBJECT = "(no subject)"
# A case number has at most 18 digits: it fits a signed 64-bit database column.
_MAX_NUMBER_DIGITS = 18

# ---------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------

_VALID_PREFIX = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
# Spaces tolerated just inside the brackets: "[ SUP-12 ]", also no-break and ideographic.
_BRACKET_SPACE = r"[ \t\u00a0\u3000]*"


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not _VALID_PREFIX.fullmatch(prefix):
        raise ValueError(f"token prefix must be ASCII letters, digits, '_' or '-': {prefix!r}")
    return prefix


@functools.lru_cache(maxsize=32)
def _token_pattern(prefix: str) -> re.Pattern[str]:
    # re.ASCII: case-insensitive on the prefix without Unicode case folding, so
    # "[ſUP-1]" (long s) or a Kelvin sign never pass for "SUP"; [0-9] rather than
    # \d so that full-width or Arabic-Indic digits are not case numbers either.
    return re.compile(
        r"\[" + _BRACKET_SPACE + re.escape(_check_prefix(prefix)) + r"-([0-9]+)" + _BRACKET_SPACE + r"\]",
        re.IGNORECASE | re.ASCII,
    )


def _token_number(digits: str) -> int | None:
    """The case number for the digits of a token, or None when they are not one."""
    if digits.startswith("0") or len(digits) > _MAX_NUMBER_DIGITS:
        return None  # "[SUP-012]", "[SUP-0]", 19+ digits: not something mailbot wrote
    return int(digits)


def format_token(prefix: str, number: int) -> str:
    """The token mailbot puts in subjects: ``format_token("SUP", 123) == "[SUP-123]"``.

    Raises ValueError for a prefix that is not ASCII letters, digits, ``_`` or ``-``,
    and for a number that ``find_token`` would not read back (< 1 or > 18 digits).
    """
    _check_prefix(prefix)
    if isinstance(number, bool) or not isinstance(number, int):
        raise ValueError(f"case number must be an int, not {type(number).__name__}")
    if not 0 < number < 10**_MAX_NUMBER_DIGITS:
        raise ValueError(f"case number out of range: {number}")
    return f"[{prefix}-{number}]"


def find_token(subject: str, prefix: str) -> int | None:
    """The case number of the first ``[PREFIX-n]`` token in ``subject``, or None.

    - The prefix matches case-insensitively ("[sup-12]"), spaces just inside the
      brackets are tolerated ("[ SUP-12 ]"), tokens of other prefixes are ignored.
    - Encoded words still present in the subject are decoded first, so
      ``=?utf-8?b?W1NVUC0xMl0=?=`` finds 12.
    - Numbers with a leading zero, zero itself and numbers of more than 18 digits are
      not tokens (mailbot never writes them); the search goes on past them.
    - When several tokens appear the **first** one wins: a forwarded case carries
      the newest token first ("Re: [SUP-9] Fwd: [SUP-3] …" → 9), because mailbot
      writes its token into the subject it sends and the client puts its own
      prefixes in front of everything that was there before.
    """
    pattern = _token_pattern(prefix)
    text = decode_encoded_words(subject) if "=?" in subject else subject
    for match in pattern.finditer(text):
        number = _token_number(match.group(1))
        if number is not None:
            return number
    return None


# ---------------------------------------------------------------------------
# Reply and forward prefixes
# ---------------------------------------------------------------------------

# The words mail clients put in front of a subject when replying or forwarding, in
# their various localisations, matched case-insensitively. "R" and "Rif" are Italian, "Pd" Polish,
# "TR"/"Réf" French, "Enc" Portuguese, "Doorst" Dutch, "Ynt" Turkish, "RV" Spanish.
_REPLY_WORDS = (
    "re", "aw", "sv", "antw", "antwort", "odp", "vs", "ynt", "ris", "r", "rif", "réf",
    "fwd", "fw", "wg", "tr", "enc", "doorst", "pd", "rv",
    "отв", "ответ", "пересл", "переслано", "відп", "відповідь", "переслати",
    "回复", "答复", "转发", "回覆", "轉寄", "轉發", "返信", "転送",
)  # fmt: skip
_WORD_ALTERNATION = "|".join(re.escape(w) for w in sorted(_REPLY_WORDS, key=len, reverse=True))
# A reply counter some clients add: Re[2]:, Re(2):, Re^2:
_COUNTER = r"(?:\[\d{1,6}\]|\(\d{1,6}\)|\^\d{1,6})?"
_COLON = r"[:：﹕]"
_LEADING_PREFIX = re.compile(
    r"\s*(?:" + _WORD_ALTERNATION + r")\s*" + _COUNTER + r"\s*" + _COLON + r"\s*", re.IGNORECASE
)
# "[Fwd: original subject]", as Thunderbird and old Netscape forward.
_BRACKETED = re.compile(
    r"\s*\[\s*(?:" + _WORD_ALTERNATION + r")\s*" + _COUNTER + r"\s*" + _COLON + r"(.*)\]\s*",
    re.IGNORECASE | re.DOTALL,
)
# "subject (fwd)", as Pine forwards.
_TRAILING_FWD = re.compile(r"\s*\((?:fwd|fw)\)\s*\Z", re.IGNORECASE)


def strip_reply_prefixes(subject: str) -> str:
    """``subject`` without its leading reply/forward prefixes, stripped.

    Any number of prefixes in any mix of languages and forms is removed:
    ``"RE: AW: Re[3]: Отв: Fwd: x"`` → ``"x"``, ``"[Fwd: x]"`` → ``"x"``,
    ``"回复：x"`` → ``"x"``, ``"x (fwd)"`` → ``"x"``. A prefix needs its colon: "Re
    x" and "Reply: x" are left alone. A subject made only of prefixes gives ``""``;
    the caller substitutes "(no subject)".
    """
    text = subject.strip()
    while True:
        match = _LEADING_PREFIX.match(text)
        if match:
            text = text[match.end() :]
            continue
        match = _BRACKETED.fullmatch(text)
        if match:
            text = match.group(1).strip()
            continue
        match = _TRAILING_FWD.search(text)
        if match:
            text = text[: match.start()]
            continue
        return text.strip()


# ---------------------------------------------------------------------------
# Subjects mailbot sends
# ---------------------------------------------------------------------------

# Characters that must never reach a header: C0/C1 controls (CR and LF allow header
# injection), the Unicode line and paragraph separators, bidi embedding/override/
# isolate controls (they make a subject display as something else) and the BOM.
_UNSAFE_CHARS = {
    **{c: " " for c in range(0x00, 0x20)},
    **{c: " " for c in range(0x7F, 0xA0)},
    0x2028: " ",
    0x2029: " ",
    **{c: None for c in range(0x202A, 0x202F)},
    **{c: None for c in range(0x2066, 0x206A)},
    0xFEFF: None,
}
_SPACES = re.compile(r"\s+")
# Characters that belong to the one before them: a cut must not separate them.
_JOINERS = frozenset("\u200c\u200d\ufe0e\ufe0f")


def _one_line(text: str) -> str:
    """Controls replaced by spaces, whitespace runs collapsed, lone surrogates dropped."""
    text = text.translate(_UNSAFE_CHARS)
    if not text.isascii():
        text = text.encode("utf-8", "ignore").decode("utf-8")  # lone surrogates
    return _SPACES.sub(" ", text).strip()


def clean_subject(subject: str, prefix: str) -> str:
    """The subject as a human wrote it: no encoded words, no ``[PREFIX-n]`` tokens,
    no reply/forward prefixes, one line, whitespace collapsed. May be ``""``.

    ``clean_subject("Re: [SUP-9] Fwd: [SUP-3] Printer", "SUP") == "Printer"``.
    Tokens of other prefixes ("[ABC-1]") and mailing-list tags stay.
    """
    pattern = _token_pattern(prefix)
    text = subject
    # Decode until nothing changes: a subject whose encoded words decode to more
    # encoded words must not leave anything behind that find_token would decode
    # into a token later (it would win over the token mailbot appends).
    for _ in range(4):
        if "=?" not in text:
            break
        decoded = decode_encoded_words(text)
        if decoded == text:
            break
        text = decoded
    else:
        text = text.replace("=?", "= ?")
    text = unicodedata.normalize("NFC", _one_line(text))

    def drop_token(match: re.Match[str]) -> str:
        return " " if _token_number(match.group(1)) is not None else match.group(0)

    # Removing a token can join its neighbours into a new one ("[[SUP-1]SUP-5]"):
    # repeat until none is left; past 20 rounds the input is hostile, break brackets.
    for _ in range(20):
        stripped = pattern.sub(drop_token, text)
        if stripped == text:
            break
        text = stripped
    else:
        if find_token(text, prefix) is not None:
            text = text.replace("[", "(")
    return _SPACES.sub(" ", strip_reply_prefixes(text)).strip()


def _truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when cut.

    The cut never separates a character from its combining marks or joiners, and
    prefers the last space within the final 20 characters, so no word is halved
    when that can be helped.
    """
    if len(text) <= limit:
        return text
    cut = limit - 1  # room for the ellipsis
    while cut > 0 and (unicodedata.combining(text[cut]) or text[cut] in _JOINERS):
        cut -= 1
    space = text.rfind(" ", max(0, cut - 20), cut + 1)
    if space > 0:
        cut = space
    return text[:cut].rstrip() + "…"


def subject_with_token(subject: str, prefix: str, number: int, reply: bool = True) -> str:
    """The subject mailbot sends: ``"Re: <clean subject> [SUP-12]"``.

    - ``reply=False`` leaves out "Re: " (a new mail, such as a follow-up).
    - The subject is cleaned with ``clean_subject`` (old tokens and prefixes go, so
      they never pile up) and reduced to one line: CR, LF and every other control
      character become spaces, which makes header injection impossible.
    - An empty subject becomes "(no subject)"; a long one is cut to
      ``MAX_SUBJECT_CHARS`` characters (ending in "…") before the token is added, so
      the token always survives.
    """
    token = format_token(prefix, number)
    text = _truncate(clean_subject(subject, prefix), MAX_SUBJECT_CHARS) or NO_SUBJECT
    return f"Re: {text} {token}" if reply else f"{text} {token}"


# ---------------------------------------------------------------------------
# Decoding: RFC 2047 encoded words and bytes of uncertain charset
# ---------------------------------------------------------------------------

# An encoded word. Looser than RFC 2047 on purpose, like the stdlib's own
# email.header.ecre: words glued to text ("abc=?utf-8?q?x?="), spaces inside the
# encoded text, and an RFC 2231 language suffix on the charset ("utf-8*en").
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,64})\?([bBqQ])\?([^?]*)\?=")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")

# Charsets decoded with a superset: mail labelled with the subset routinely uses the
# superset's extra characters (Outlook's "gb2312" is gbk, "iso-8859-1" is cp1252...).
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso_8859-1": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "iso-2022-jp": "iso2022_jp_2",
    "iso-8859-8-i": "iso-8859-8",
    "utf8": "utf-8",
}
_ASCII_BYTES = bytes(range(0x80))
_HIGH_NON_LETTERS = bytes(range(0x80, 0xC0))
_LATIN_NEIGHBOURS = re.compile(rb"[A-Za-z][\x80-\xff]|[\x80-\xff][A-Za-z]")
_KOI8U_ONLY = re.compile(rb"[\xa4\xa6\xa7\xad\xb4\xb6\xb7\xbd]")


@functools.lru_cache(maxsize=128)
def _codec_for(label: str | None, superset: bool = True) -> str | None:
    """The Python codec to decode ``label`` with (its superset unless told otherwise),
    or None when it names no text codec."""
    if not label:
        return None
    name = label.strip().strip("\"'").split("*", 1)[0].lower()
    if superset:
        name = _SUPERSETS.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    # "base64", "rot13", "hex"... are codecs but not charsets.
    return info.name if getattr(info, "_is_text_encoding", True) else None


# Relative frequency (per cent) of letters in Russian and Ukrainian running text.
_CYRILLIC_FREQUENCY = dict(
    zip(
        "оеаинтсрвлкмдпуяыьгзбчйхжшюцщэфъёіїєґ",
        (11, 8.5, 8, 7.4, 6.7, 6.3, 5.5, 4.7, 4.5, 4.4, 3.5, 3.2, 3, 2.8, 2.6, 2, 1.9, 1.7, 1.7,
         1.7, 1.6, 1.4, 1.2, 1, 0.9, 0.7, 0.6, 0.5, 0.4, 0.3, 0.3, 0.1, 0.1, 3, 0.5, 0.4, 0.1),
        strict=True,
    )
)  # fmt: skip
_CYRILLIC_SAMPLE_BYTES = 4096


def _cyrillic_score(text: str) -> float:
    """How much ``text`` looks like Russian/Ukrainian: letter frequencies, with a
    penalty for a capital right after a small letter (what the wrong one of
    windows-1251 and KOI8 produces, since they swap the cases)."""
    score = 0.0
    after_small = False
    for char in text:
        small = char.lower()
        weight = _CYRILLIC_FREQUENCY.get(small)
        if weight is None:
            after_small = False
            continue
        capital = char != small
        score += weight - (8 if capital and after_small else 0)
        after_small = not capital
    return score


def guess_charset(data: bytes) -> str:
    """A best guess for 8-bit bytes that are not UTF-8.

    Mail without a usable charset label is, in practice, Cyrillic (windows-1251 or
    KOI8-R/U) or Western European (windows-1252). Cyrillic text is whole words of
    bytes >= 0xC0, while accented Latin letters sit inside ASCII words ("Müller").
    windows-1251 and KOI8 are told apart by which reading has the more frequent
    letters and the more plausible capitalisation (``_cyrillic_score``), which works
    for all-capitals text too.
    """
    high = data.translate(None, _ASCII_BYTES)
    if not high:
        return "ascii"
    letters = high.translate(None, _HIGH_NON_LETTERS)  # bytes >= 0xC0
    latin_neighbours = len(_LATIN_NEIGHBOURS.findall(data))
    if len(letters) * 5 >= len(high) * 3 and latin_neighbours * 4 < len(high):
        sample = data[:_CYRILLIC_SAMPLE_BYTES]
        windows = _cyrillic_score(sample.decode("cp1251", "replace"))
        koi8 = _cyrillic_score(sample.decode("koi8_r", "replace"))
        if windows >= koi8:
            return "cp1251"
        return "koi8_u" if _KOI8U_ONLY.search(data) else "koi8_r"
    return "cp1252"


# Codecs whose bytes are not ASCII-compatible: UTF-8 validity says nothing there.
_NOT_ASCII_COMPATIBLE = re.compile(r"utf[-_]?(16|32|7)|iso2022|hz|cp0?37|cp500|cp1140|cp87", re.IGNORECASE)


def decode_bytes(data: bytes, charset: str | None = None, *, hint: str | None = None) -> str:
    """``data`` as text, never raising.

    Order:

    1. Bytes that are valid UTF-8 (and not pure ASCII) are UTF-8, whatever
       ASCII-compatible charset the label claims: clients routinely label UTF-8 mail
       "us-ascii", "iso-8859-1" or "windows-1251", while real text in a single-byte
       or CJK charset is practically never valid UTF-8 by accident.
    2. The declared charset (through a superset, see ``_SUPERSETS``).
    3. ``hint`` (e.g. the charset guessed for the same message's headers), then
       ``guess_charset``; latin-1 as the last resort, which always succeeds.
    """
    if not data:
        return ""
    codec = _codec_for(charset)
    ascii_compatible = codec is None or not _NOT_ASCII_COMPATIBLE.match(codec)
    if ascii_compatible:
        if data.isascii():
            if b"\x1b" in data:  # ISO-2022-JP escape sequences under a wrong label
                try:
                    return data.decode("iso2022_jp_2")
                except UnicodeError:
                    pass
            return data.decode("ascii")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    for declared in (codec, _codec_for(charset, superset=False)):
        if declared is not None:
            try:
                return data.decode(declared)
            except (UnicodeError, LookupError, ValueError):
                pass
    for fallback in (_codec_for(hint), guess_charset(data)):
        if fallback and fallback != codec:
            try:
                return data.decode(fallback)
            except (UnicodeError, LookupError, ValueError):
                pass
    return data.decode("latin-1")


def _decode_b(text: str) -> bytes | None:
    """Lenient base64 (missing padding, stray characters); None when nothing of it
    decodes (then it was not an encoded word after all)."""
    data = _NOT_BASE64.sub(b"", text.encode("ascii", "ignore"))
    if len(data) % 4 == 1:
        data = data[:-1]  # a lone trailing character carries no complete byte
    if not data:
        return None if text.strip() else b""
    try:
        return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return None


def _decode_q(text: str) -> bytes | None:
    """The "Q" encoding: ``_`` is a space, ``=XX`` a byte; a stray ``=`` stays."""
    try:
        return binascii.a2b_qp(text.encode("latin-1"), header=True)
    except UnicodeEncodeError:
        return None  # characters above U+00FF: not an encoded word after all


def decode_encoded_words(text: str) -> str:
    """``text`` with its RFC 2047 encoded words decoded, never raising.

    Unlike ``email.header.decode_header``, which turns the non-ASCII characters of
    already-decoded text into ``\\uXXXX`` escapes and raises on bad base64, this
    keeps plain text as it is and leaves an undecodable word as literal text.
    Whitespace between two encoded words is dropped (RFC 2047 6.2), and adjacent
    words in the same charset are joined as bytes before decoding, so a multi-byte
    character split over two words (a common client bug) comes out whole.
    Unknown or mislabelled charsets go through ``decode_bytes``.
    """
    if "=?" not in text:
        return text
    out: list[str] = []
    run: list[bytes] = []  # bytes of consecutive encoded words sharing run_charset
    run_charset = ""
    last_was_word = False
    pos = 0

    def flush() -> None:
        if run:
            out.append(decode_bytes(b"".join(run), run_charset))
            run.clear()

    for match in _ENCODED_WORD.finditer(text):
        between = text[pos : match.start()]
        charset, encoding, payload = match.group(1), match.group(2), match.group(3)
        data = _decode_b(payload) if encoding in "bB" else _decode_q(payload)
        pos = match.end()
        if data is None:  # not decodable: keep the word as text
            flush()
            out.append(between + match.group(0))
            last_was_word = False
            continue
        if last_was_word and (not between or between.isspace()):
            if charset.lower() != run_charset.lower():
                flush()
        else:
            flush()
            out.append(between)
        run.append(data)
        run_charset = charset
        last_was_word = True
    flush()
    out.append(text[pos:])
    return "".join(out)
