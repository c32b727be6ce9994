"""Raw message bytes → ``Inbound``: the only module that imports mail-parser.

mail-parser does the MIME work (body parts, charsets of bodies, attachments, defect
reports) on the stdlib ``email`` tree it builds once; everything mailbot decides on
(subject, addresses, ids, date, header values) is read from that same tree's raw
header values (``MailParser.message``), never by parsing the message a second time:

- header values are unfolded, their raw 8-bit bytes decoded (UTF-8, else a charset
  guessed once for the whole header block: windows-1251, KOI8-R/U or windows-1252),
  and RFC 2047 decoded tolerantly by ``mailbot.tokens.decode_encoded_words``;
- mail-parser's own header decoding drops the bytes it cannot decode, which loses
  raw windows-1251/KOI8-R subjects, hence the above.

Contract: ``parse`` returns an ``Inbound`` or raises ``ParseError`` (the caller then
quarantines the raw bytes); it never raises anything else. ``ParseError`` is raised
for: empty input; input with no header field at all (not an RFC 5322 message: a bare
body, random binary); MIME nesting deeper than ``MAX_MIME_DEPTH``; and, wrapped, any
exception from mail-parser or from this module's own code.
"""

from __future__ import annotations

import binascii
import hashlib
import html
import re
from datetime import datetime, timezone
from email import message_from_bytes
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

import mailparser  # type: ignore[import-untyped]
from mailparser.exceptions import MailParserError, MailParserRecursionError  # type: ignore[import-untyped]
from mailparser.utils import decode_base64_payload  # type: ignore[import-untyped]

from mailbot.errors import ParseError
from mailbot.message import Address, Attachment, Inbound
from mailbot.tokens import decode_bytes, decode_encoded_words, guess_charset

__all__ = ["MAX_MIME_DEPTH", "TRACE_HEADERS", "content_hash", "html_to_text", "parse", "safe_filename"]

#: Deeper MIME nesting than this is refused (each multipart or message/rfc822
#: container is one level). Real mail stays under 10; deeper is a "multipart bomb".
MAX_MIME_DEPTH = 50

#: Header fields added in transit or by the mailbox's own storage. They differ
#: between two deliveries of the same mail, so ``content_hash`` leaves them out
#: (together with every ``ARC-*`` field). DKIM-Signature is not among them: the
#: sender's domain adds it once, before the message travels.
TRACE_HEADERS = frozenset(
    {
        "received",
        "return-path",
        "delivered-to",
        "x-original-to",
        "x-delivered-to",
        "x-received",
        "authentication-results",
        "received-spf",
        # Dovecot (mbox/maildir) bookkeeping
        "x-uid",
        "status",
        "x-status",
        "x-keywords",
        "content-length",
        "x-imapbase",
        "x-imap",
    }
)

_FILENAME_MAX_BYTES = 200
_EXTENSION_MAX_CHARS = 16
_MAX_ID_CHARS = 995  # a Message-ID must fit one 998-octet header line

# --- content hash ----------------------------------------------------------------

_FIRST_BLANK_LINE = re.compile(rb"\n\r?\n")
# One whole trace field: its first line and its continuation lines (LF endings).
_TRACE_FIELD = re.compile(
    rb"^(?:arc-[!-9;-~]*|" + b"|".join(re.escape(name.encode()) for name in sorted(TRACE_HEADERS)) + rb")"
    rb"[ \t]*:[^\n]*(?:\n[ \t][^\n]*)*(?:\n|\Z)",
    re.IGNORECASE | re.MULTILINE,
)
_CONTINUATION = re.compile(rb"\n(?=[ \t])")
_MBOX_FROM = re.compile(rb"From (?![ \t]*:)")  # "From  : x" is an obsolete-syntax From field
_WSP_RUN = re.compile(rb"[ \t]+")
_TRAILING_WSP = re.compile(rb" +$", re.MULTILINE)


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    """Header block and body of ``raw``, split at the first blank line (LF or CRLF)."""
    if raw.startswith((b"\n", b"\r\n")):
        return b"", raw[raw.index(b"\n") + 1 :]
    match = _FIRST_BLANK_LINE.search(raw)
    if match is None:
        return raw, b""
    return raw[: match.start()].rstrip(b"\r"), raw[match.end() :]


def content_hash(raw: bytes) -> str:
    """sha256 (hex) of ``raw`` without its trace headers, normalised for transport.

    Why: the same mail can reach the mailbox twice (a customer writes to two of our
    addresses, a list and a direct copy, a re-sent spool). The copies differ only in
    what the hops added: Received/ARC/Delivered-To/Authentication-Results…, the
    storage's own X-UID/Status/X-Keywords, an mbox "From " line, the line endings,
    and possibly the folding of a header. So the hash covers the header block with
    those fields removed *wherever they stand* in the top-level block (hops prepend
    X-Spam-… or X-Gm-… fields between Received lines, and mbox storage appends Status
    at the end, so stopping at the first non-trace field would miss some), every
    remaining field unfolded with its whitespace runs collapsed, and the body with
    CRLF turned into LF and trailing newlines dropped. Bodies of MIME parts and
    embedded messages are hashed as they are. Everything runs on bytes with
    C-level regular expressions: this is on the ingest hot path.
    """
    head, body = _split_head(raw)
    head = head.replace(b"\r\n", b"\n")
    if _MBOX_FROM.match(head):  # mbox separator line, not a field
        head = head.partition(b"\n")[2]
    head = _TRACE_FIELD.sub(b"", head)
    head = _CONTINUATION.sub(b"", head)  # unfold: drop the line break, keep the WSP
    head = _TRAILING_WSP.sub(b"", _WSP_RUN.sub(b" ", head)).strip(b"\n")
    digest = hashlib.sha256(head)
    digest.update(b"\n\n")
    digest.update(body.replace(b"\r\n", b"\n").rstrip(b"\r\n"))
    return digest.hexdigest()


# --- header values ---------------------------------------------------------------

_FOLD = re.compile(r"\r?\n(?=[ \t])|\r?\n\Z")
_LINE_BREAKS_AND_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_WS = re.compile(r"\s+")
_SURROGATES = re.compile(r"[\ud800-\udfff]")


def _clean(text: str) -> str:
    """Text safe to store: no NUL, no lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.isascii() and _SURROGATES.search(text):
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


class _HeaderDecoder:
    """Turns the stdlib's raw header values (8-bit bytes kept as surrogate escapes)
    into text. The charset guess for raw 8-bit bytes is made once per message over
    all its non-UTF-8 header bytes, so a short subject and a sender name written by
    the same client get the same answer."""

    def __init__(self, raw_values: list[str]) -> None:
        self._charset: str | None = None
        self._raw_values = raw_values

    def _guess(self) -> str:
        if self._charset is None:
            sample = b"".join(
                v.encode("utf-8", "surrogateescape") for v in self._raw_values if not v.isascii() and not _is_utf8(v)
            )
            self._charset = guess_charset(sample) if sample else ""
        return self._charset or "utf-8"

    @property
    def hint(self) -> str | None:
        """The charset guessed for raw 8-bit header bytes, if there were any."""
        self._guess()
        return self._charset or None

    def text(self, value: str) -> str:
        """Unfolded value with raw 8-bit bytes decoded; encoded words left as they are."""
        value = _FOLD.sub("", value)
        if value.isascii():
            return value
        data = value.encode("utf-8", "surrogateescape")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return decode_bytes(data, self._guess())


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return False
    return True


def _lf(text: str) -> str:
    """Line endings as LF: CRLF and lone CR (old Mac clients) both become LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


def _single_line(text: str) -> str:
    return _WS.sub(" ", _LINE_BREAKS_AND_CONTROLS.sub(" ", text)).strip()


# --- ids -----------------------------------------------------------------------

_BRACKETED_ID = re.compile(r"<([^<>]*)>")
_BARE_ID = re.compile(r"[^\s<>,;()\"]+@[^\s<>,;()\"]+")
_ID_FORBIDDEN = re.compile(r"[\x00-\x20\x7f\ufffd]")


def _normal_id(inner: str) -> str | None:
    inner = _WS.sub("", inner)
    if not inner or len(inner) > _MAX_ID_CHARS or _ID_FORBIDDEN.search(inner):
        return None
    return f"<{inner}>"


def _message_id(value: str) -> str | None:
    """``<id>`` from a Message-ID value: the first bracketed id, or a single bare
    ``local@domain`` token wrapped in brackets; None for anything else."""
    match = _BRACKETED_ID.search(value)
    if match:
        return _normal_id(match.group(1))
    token = value.strip()
    if token and "@" in token and not _WS.search(token):
        return _normal_id(token)
    return None


def _id_list(values: list[str]) -> list[str]:
    """Ids named by In-Reply-To/References values, in order, without repeats.

    Bracketed ids are taken as they are; a value with no brackets at all is read as
    whitespace/comma separated bare ids (some clients write ``a@b c@d``). Words of a
    comment next to bracketed ids are never taken for ids.
    """
    seen: dict[str, None] = {}
    for value in values:
        found = _BRACKETED_ID.findall(value)
        candidates = found if found else _BARE_ID.findall(value)
        for inner in candidates:
            normal = _normal_id(inner)
            if normal is not None:
                seen.setdefault(normal, None)
    return list(seen)


# --- addresses -----------------------------------------------------------------


_BARE_ADDRESS = re.compile(r"[^\s<>,;:\"()\[\]@]+@[^\s<>,;:\"()\[\]@]+")


def _usable_address(addr: str) -> bool:
    return (
        "@" in addr
        and not addr.startswith("@")
        and not addr.endswith("@")
        and (addr.startswith('"') or not _WS.search(addr))
    )


_ENCODED_WORD_RE = re.compile(r"=\?[^?\s]{1,64}\?[bBqQ]\?[^?]*\?=")
_SHIELD = re.compile(r"mbotew(\d+)mbotew")


def _shield_encoded_words(value: str, words: list[str]) -> str:
    """Hide encoded words from the address parser as quoted strings.

    Their encoded text may hold ``:``, ``@`` or ``,`` ("=?utf-8?q?Bcc:_x@evil?=") that
    ``getaddresses`` would read as group syntax or a second address; names are
    put back and decoded after parsing.
    """

    def hide(match: re.Match[str]) -> str:
        words.append(match.group(0))
        return f'"mbotew{len(words) - 1}mbotew"'

    return _ENCODED_WORD_RE.sub(hide, value)


def _addresses(values: list[str], *, _retry: bool = True) -> list[Address]:
    """Mailboxes of address header values (already unfolded and 8-bit decoded).

    ``getaddresses`` runs on the values *before* RFC 2047 decoding and the names are
    decoded afterwards: decoding first would let an encoded comma or angle bracket
    in a display name ("=?utf-8?q?Smith=2C_John?=") split one mailbox into two.
    Emails are stripped and lower-cased; entries that are not an address are
    skipped. When nothing usable comes out, the value is tried again RFC 2047
    decoded (some senders encode the whole value), then scanned for bare
    ``local@domain`` words ("From: Big Bug bb@bug.com"), since a customer whose
    client writes a broken From still expects an answer.
    """
    if not values:
        return []
    result: list[Address] = []
    words: list[str] = []
    for name, addr in getaddresses([_shield_encoded_words(v, words) for v in values]):
        addr = addr.strip().lower()
        if not _usable_address(addr) or _SHIELD.search(addr):
            continue
        name = _SHIELD.sub(lambda m: words[int(m.group(1))], name)
        name = _single_line(_clean(decode_encoded_words(name))).strip("\"' ") if name else ""
        if name.lower() == addr:
            name = ""
        result.append(Address(email=_clean(addr), name=name))
    if result or not _retry:
        return result
    decoded = [decode_encoded_words(v) for v in values if "=?" in v]
    if decoded and (result := _addresses(decoded, _retry=False)):
        return result
    seen: dict[str, None] = {}
    for value in values:
        for word in _BARE_ADDRESS.findall(decode_encoded_words(value)):
            seen.setdefault(_clean(word.lower()), None)
    return [Address(email=email) for email in seen]


# --- date ------------------------------------------------------------------------


def _date(value: str | None) -> datetime | None:
    """Aware datetime in the offset the sender wrote; -0000 or an unknown zone is UTC."""
    if not value or not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


# --- HTML → text ---------------------------------------------------------------

# Elements that end a paragraph (blank line after) and elements that end a line.
_PARAGRAPH_TAGS = frozenset(
    {"p", "table", "ul", "ol", "dl", "blockquote", "pre", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "form", "fieldset"}
)
_LINE_TAGS = frozenset(
    {"div", "li", "tr", "dt", "dd", "section", "article", "header", "footer", "address", "center", "caption"}
)
_HIDDEN_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript", "xml"})
_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")  # HTML whitespace: not &nbsp;
_BLANK_LINES = re.compile(r"\n{3,}")


class _TextExtractor(HTMLParser):
    """Plain text of an HTML part: tags dropped, entities unescaped, whitespace
    collapsed as a browser would, a line break for <br> and line-level elements and a
    blank line around paragraph-level ones."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._newlines = 0  # line breaks at the end of what was written so far
        self._hidden = 0
        self._pre = 0

    def _break(self, count: int) -> None:
        if self.chunks and self._newlines < count:
            self.chunks.append("\n" * (count - self._newlines))
            self._newlines = count

    def _element(self, tag: str, start: bool) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden = self._hidden + 1 if start else max(0, self._hidden - 1)
        elif tag in _PARAGRAPH_TAGS:
            self._break(2)
            if tag == "pre":
                self._pre = self._pre + 1 if start else max(0, self._pre - 1)
        elif tag in _LINE_TAGS:
            self._break(1)
        elif tag in ("td", "th") and start and self._newlines == 0 and self.chunks:
            self.chunks.append(" ")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.chunks.append("\n")
            self._newlines += 1
        else:
            self._element(tag, True)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag != "br":
            self._element(tag, False)

    def handle_endtag(self, tag: str) -> None:
        self._element(tag, False)

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if self._pre:
            self.chunks.append(data)
            self._newlines = len(data) - len(data.rstrip("\n")) if data.strip() else self._newlines + data.count("\n")
            return
        text = _HTML_SPACE.sub(" ", data)
        if not text.strip():
            if self.chunks and not self._newlines:
                self.chunks.append(" ")
            return
        self.chunks.append(text)
        self._newlines = 0

    def text(self) -> str:
        lines = (line.strip(" ") for line in "".join(self.chunks).split("\n"))
        return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


_TAG = re.compile(r"<[^>]*>")


def html_to_text(markup: str) -> str:
    """Plain-text rendering of an HTML body (stdlib ``html.parser``), never raising."""
    parser = _TextExtractor()
    try:
        parser.feed(markup)
        parser.close()
        return parser.text()
    except Exception:  # html.parser can still trip on pathological markup
        return _BLANK_LINES.sub("\n\n", html.unescape(_TAG.sub(" ", markup))).strip()


# --- attachments ---------------------------------------------------------------

# Characters never kept in a file name: path separators, Windows-reserved ones,
# controls and the bidi/invisible characters used to disguise an extension.
_FILENAME_BAD = re.compile(r"[<>:\"|?*\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_DOT_RUN = re.compile(r"\.{2,}")
_WINDOWS_RESERVED = re.compile(r"(?:con|prn|aux|nul|com[0-9]|lpt[0-9])(?:\..*)?\Z", re.IGNORECASE)
# mail-parser names a nameless RTF or attachment-disposition part with 10 random
# letters; a stored name must be a function of the bytes, so those are replaced.
_RANDOM_NAME = re.compile(r"[a-z]{10}\.(rtf|txt)")
_EXTENSIONS = {
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/pgp-signature": ".asc",
    "application/pkcs7-signature": ".p7s",
    "application/x-pkcs7-signature": ".p7s",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "message/rfc822": ".eml",
    "message/delivery-status": ".txt",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "text/rtf": ".rtf",
    "application/rtf": ".rtf",
}


def safe_filename(name: str | None, index: int) -> str:
    """A file name that is safe to show and to store, never a path.

    Basename only (both ``/`` and ``\\`` separate), no control or bidi characters, no
    ``..``, no leading dots or spaces, no Windows-reserved name, at most 200 UTF-8
    bytes with the extension kept; ``attachment-<index>.bin`` when nothing usable is
    left. ``safe_filename("../../etc/passwd", 1) == "passwd"``.
    """
    fallback = f"attachment-{index}.bin"
    if not name:
        return fallback
    text = _clean(name).replace("\\", "/").rsplit("/", 1)[-1]
    text = _WS.sub(" ", _FILENAME_BAD.sub("_", text))
    text = _DOT_RUN.sub(".", text).strip(" .")
    text = text.lstrip("._ ") if text.startswith(".") else text
    if not text or not any(ch.isalnum() for ch in text):
        return fallback
    if _WINDOWS_RESERVED.match(text):
        text = "_" + text
    if len(text.encode("utf-8")) > _FILENAME_MAX_BYTES:
        stem, dot, ext = text.rpartition(".")
        if not dot or not stem or len(ext) > _EXTENSION_MAX_CHARS:
            stem, ext = text, ""
        suffix = f".{ext}" if ext else ""
        budget = _FILENAME_MAX_BYTES - len(suffix.encode("utf-8"))
        stem = stem.encode("utf-8")[:budget].decode("utf-8", "ignore").rstrip(" .")
        text = stem + suffix
    return text


def _b64decode(payload: str) -> bytes:
    """Base64 payload → bytes: binascii (skips line breaks and junk) first, and
    mail-parser's forgiving decoder for bad padding, as mail clients are forgiving."""
    try:
        return binascii.a2b_base64(payload.encode("ascii", "ignore"))
    except (binascii.Error, ValueError):
        return bytes(decode_base64_payload(payload))


def _attachments(parsed: mailparser.MailParser, raw: bytes) -> list[Attachment]:
    result: list[Attachment] = []
    for index, item in enumerate(parsed.attachments, 1):
        payload = item.get("payload") or ""
        if item.get("binary"):
            data = _b64decode(payload) if isinstance(payload, str) else bytes(payload)
        elif isinstance(payload, str):
            data = payload.encode("utf-8", "surrogateescape")
        else:
            data = bytes(payload)
        content_type = str(item.get("mail_content_type") or "application/octet-stream").lower()
        name = item.get("filename")
        name = name if isinstance(name, str) else None
        content_id = item.get("content-id") or ""
        if name and content_id and name == content_id:
            # mail-parser names a nameless part with a Content-ID after the id.
            name = f"attachment-{index}{_EXTENSIONS.get(content_type, '.bin')}"
        elif name and (random := _RANDOM_NAME.fullmatch(name)) and name.encode() not in raw:
            name = f"attachment-{index}.{random.group(1)}"
        result.append(Attachment(filename=safe_filename(name, index), content_type=content_type, data=data))
    return result


# --- bodies ----------------------------------------------------------------------


# UTF-8 read as windows-1252/latin-1 ("Ã©", "Ã¼") or as windows-1251 ("Рџ", "Гі").
_MOJIBAKE = re.compile(
    "[\u00c2-\u00c5][\u0080-\u00bf\u0152-\u0192\u02c6\u02dc\u2013-\u2122]"
    "|[\u0412\u0413\u0420\u0421][\u0400-\u040f\u0450-\u045f\u0490\u0491\u00a0-\u00bb\u2013-\u2122]"
)


_MOJIBAKE_LEADS = "\u00c2\u00c3\u00c4\u00c5\u0412\u0413\u0420\u0421"


def _needs_redecoding(parsed: mailparser.MailParser) -> bool:
    """Whether mail-parser's body texts are known to be wrong for some part.

    - CharsetDecodeDefect: the declared charset failed and mail-parser fell back to
      UTF-8 with replacement characters (windows-1251 without a label, or a wrong one).
    - ESC in the text: mail-parser returns a 7bit part as it is without applying its
      charset, which leaves ISO-2022-JP (7-bit, escape sequences) undecoded.
    - Mojibake: UTF-8 bytes decoded with a wrong single-byte label.
    """
    if "CharsetDecodeDefect" in parsed.defects_categories:
        return True
    return any(
        "\x1b" in text or (not text.isascii() and _maybe_mojibake(text))
        for text in (*parsed.text_plain, *parsed.text_html)
    )


def _maybe_mojibake(text: str) -> bool:
    # Substring tests for the lead characters first: ten times cheaper than the regex.
    return any(lead in text for lead in _MOJIBAKE_LEADS) and _MOJIBAKE.search(text) is not None


def _redecoded_bodies(message: Message, hint: str | None) -> tuple[list[str], list[str]]:
    """Text and HTML body parts decoded with ``decode_bytes`` (see ``_needs_redecoding``).

    Leaf text/plain and text/html parts that are not attachments, in order; ``hint``
    is the charset guessed for the headers, tried for parts that declare no usable
    charset before guessing again from the part alone.
    """
    plain: list[str] = []
    markup: list[str] = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_content_disposition() == "attachment" or part.get_filename():
            continue
        subtype = part.get_content_subtype()
        if subtype not in ("plain", "html"):
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes) or not data:
            continue
        try:
            charset = part.get_content_charset()
        except (LookupError, UnicodeError, ValueError):
            charset = None
        (plain if subtype == "plain" else markup).append(decode_bytes(data, charset, hint=hint))
    return plain, markup


def _mail_parser(raw: bytes, defects: list[str]) -> tuple[mailparser.MailParser | None, Message]:
    """mail-parser's result and its stdlib tree; the stdlib tree alone when mail-parser
    itself fails on the input.

    mail-parser 4.8 raises on some malformed input the stdlib parses fine (e.g. a
    truncated base64 encoded word in a display name, ``From: =?utf-8?b?a?= <x@y>``,
    raises HeaderParseError from its address code). Such a message would otherwise be
    quarantined; instead it is parsed by the stdlib alone, bodies and attachments are
    taken from that tree, and a defect says so. Nesting errors are not retried.
    """
    try:
        parsed = mailparser.MailParser.from_bytes(raw)
    except (MailParserRecursionError, RecursionError):
        raise
    except Exception as exc:  # a mail-parser bug on odd input: degrade, don't quarantine
        defects.append(_clean(f"mail-parser failed ({type(exc).__name__}: {str(exc)[:80]}); stdlib fallback"))
        return None, message_from_bytes(raw)
    message = parsed.message
    return (parsed, message) if message is not None else (None, Message())


def _stdlib_defects(message: Message) -> set[str]:
    """Defect categories of every part, as mail-parser reports them."""
    found: set[str] = set()
    stack = [message]
    while stack:
        part = stack.pop()
        found.update(type(defect).__name__ for defect in part.defects)
        if part.is_multipart() and isinstance(part.get_payload(), list):
            stack.extend(child for child in part.get_payload() if isinstance(child, Message))
    return found


def _stdlib_attachments(message: Message) -> list[Attachment]:
    """Attachments read from the stdlib tree (fallback path): every leaf part that is
    not an inline text/plain or text/html body."""
    result: list[Attachment] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        try:
            name = part.get_filename()
        except (LookupError, UnicodeError, ValueError):
            name = None
        attached = part.get_content_disposition() == "attachment" or name is not None
        if content_type in ("text/plain", "text/html") and not attached:
            continue
        index = len(result) + 1
        data = part.get_payload(decode=True)
        shown = (
            _clean(decode_encoded_words(str(name)))
            if name
            else f"attachment-{index}{_EXTENSIONS.get(content_type, '.bin')}"
        )
        result.append(
            Attachment(
                filename=safe_filename(shown, index),
                content_type=content_type,
                data=data if isinstance(data, bytes) else b"",
            )
        )
    return result


_OBSOLETE_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)
# What sometimes stands in front of a header block: a UTF-8 BOM, blank lines, an
# mbox "From " line escaped as ">From ".
_LEADING_JUNK = re.compile(rb"\A(?:\xef\xbb\xbf)?(?:[ \t]*\r?\n)*(?:>From [^\n]*\n)?")
_FIELD_START = re.compile(rb"[!-9;-~]+[ \t]*:")


def _repair_header_block(raw: bytes) -> bytes | None:
    """``raw`` made readable when the stdlib found no header in it, or None.

    Two repairs, tried only for a message that parsed to no header at all: junk in
    front of the header block (see ``_LEADING_JUNK``) is dropped when a header field
    follows it, and "Name  : value" fields are rewritten "Name: value" (RFC 5322 4.5
    obsolete syntax, which readers must accept but the stdlib does not).
    """
    junk = _LEADING_JUNK.match(raw)
    start = junk.end() if junk else 0
    if start and not _FIELD_START.match(raw, start):
        start = 0
    body = raw[start:]
    head, _ = _split_head(body)
    fixed, count = _OBSOLETE_FIELD_NAME.subn(rb"\1:", head)
    if not start and not count:
        return None
    return fixed + body[len(head) :]


def _mime_depth(message: Message, limit: int) -> int:
    """Nesting depth of ``message`` (iteratively; stops counting past ``limit``)."""
    deepest = 0
    stack: list[tuple[Message, int]] = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        if part.is_multipart():
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend((child, depth + 1) for child in children if isinstance(child, Message))
    return deepest


_DEFAULT_SYNTH_DOMAIN = "mailbot.invalid"
_SYNTH_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")

# --- parse -----------------------------------------------------------------------


def parse(
    raw: bytes,
    *,
    received_at: datetime | None = None,
    synth_domain: str = _DEFAULT_SYNTH_DOMAIN,
) -> Inbound:
    """Parse one raw RFC 5322 message.

    Returns an ``Inbound`` whose fields are described in ``mailbot.message``; here:

    - ``message_id``: the first ``<id>`` of Message-ID (whitespace removed, case
      kept). Missing, empty or unusable → ``<{content_hash[:32]}.synth@{synth_domain}>``
      with ``message_id_synthesized=True``: stable, so a re-delivery of the same mail
      gets the same id.
    - ``subject``: decoded, one line, whitespace collapsed ("" when absent).
    - ``date``: the Date header in the sender's own offset (None when unparseable).
    - ``text``: the text/plain parts joined with a newline; when there are none, a
      rendering of the HTML parts. ``html``: the HTML parts joined.
    - ``defects``: mail-parser's defect categories (sorted), then mailbot's own
      notes such as ``"message-id: missing, synthesized"``.

    Raises ParseError (and only ParseError) as described in the module docstring.
    An unusable ``synth_domain`` (empty, or with spaces, brackets or "@") is replaced
    by "mailbot.invalid" rather than raising: the contract is ParseError or nothing.
    """
    if not isinstance(synth_domain, str) or not _SYNTH_DOMAIN.fullmatch(synth_domain):
        synth_domain = _DEFAULT_SYNTH_DOMAIN
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise ParseError(f"expected bytes, got {type(raw).__name__}")
    data = bytes(raw)
    try:
        return _parse(data, received_at, synth_domain)
    except ParseError:
        raise
    except MailParserRecursionError as exc:
        raise ParseError(f"MIME nesting deeper than {MAX_MIME_DEPTH} (parser recursion limit)") from exc
    except RecursionError as exc:
        raise ParseError(f"MIME nesting deeper than {MAX_MIME_DEPTH} (recursion limit)") from exc
    except MailParserError as exc:
        raise ParseError(f"mail-parser failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # anything else is a bug here or in mail-parser: never crash the caller
        raise ParseError(f"unexpected failure: {type(exc).__name__}: {exc}") from exc


def _parse(raw: bytes, received_at: datetime | None, synth_domain: str) -> Inbound:
    if not raw.strip():
        raise ParseError("empty input")
    defects: list[str] = []
    parsed, message = _mail_parser(raw, defects)
    if len(message) == 0:
        repaired = _repair_header_block(raw)
        if repaired is not None:
            defects.append("header: repaired (leading junk or obsolete 'Name :' syntax)")
            parsed, message = _mail_parser(repaired, defects)
    if len(message) == 0:
        raise ParseError("no header fields: not an RFC 5322 message")
    if _mime_depth(message, MAX_MIME_DEPTH) > MAX_MIME_DEPTH:
        raise ParseError(f"MIME nesting deeper than {MAX_MIME_DEPTH}")

    hashed = content_hash(raw)
    defects[:0] = sorted(parsed.defects_categories if parsed is not None else _stdlib_defects(message))

    raw_items = [(name, value if isinstance(value, str) else str(value)) for name, value in message.raw_items()]
    decoder = _HeaderDecoder([value for _, value in raw_items])
    texts: dict[str, list[str]] = {}  # lower-cased name → unfolded, 8-bit decoded values
    headers: dict[str, list[str]] = {}
    for name, value in raw_items:
        key = _clean(name).strip().lower()
        text = decoder.text(value)
        texts.setdefault(key, []).append(text)
        headers.setdefault(key, []).append(_clean(decode_encoded_words(text)).strip())

    message_id = None
    for value in texts.get("message-id", []):
        message_id = _message_id(value)
        if message_id:
            break
    synthesized = message_id is None
    if message_id is None:
        defects.append(
            "message-id: missing, synthesized" if "message-id" not in texts else "message-id: unusable, synthesized"
        )
        message_id = f"<{hashed[:32]}.synth@{synth_domain}>"

    subject_values = headers.get("subject")
    subject = _single_line(subject_values[0]) if subject_values else ""

    from_list = _addresses(texts.get("from", []))
    date_values = texts.get("date")
    date = _date(date_values[0]) if date_values else None
    if date_values and date is None:
        defects.append("date: unparseable")

    if parsed is None:
        plain, markup = _redecoded_bodies(message, decoder.hint)
    else:
        plain, markup = parsed.text_plain, parsed.text_html
    if parsed is not None and _needs_redecoding(parsed):
        redecoded = _redecoded_bodies(message, decoder.hint)
        if redecoded != (plain, markup):
            plain, markup = redecoded
            defects.append("body: charset re-decoded")
    html_text = _lf(_clean("\n".join(markup)))
    text = _lf(_clean("\n".join(plain)))
    if not text and html_text:
        text = _clean(html_to_text(html_text))

    return Inbound(
        raw_sha256=hashlib.sha256(raw).hexdigest(),
        content_hash=hashed,
        message_id=message_id,
        message_id_synthesized=synthesized,
        subject=subject,
        from_addr=from_list[0] if from_list else None,
        to=_addresses(texts.get("to", [])),
        cc=_addresses(texts.get("cc", [])),
        reply_to=_addresses(texts.get("reply-to", [])),
        date=date,
        in_reply_to=_id_list(texts.get("in-reply-to", [])),
        references=_id_list(texts.get("references", [])),
        headers=headers,
        text=text,
        html=html_text,
        attachments=_attachments(parsed, raw) if parsed is not None else _stdlib_attachments(message),
        defects=defects,
        size=len(raw),
        received_at=received_at,
    )
