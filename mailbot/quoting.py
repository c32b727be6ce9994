"""Cut a manager's reply down to what they wrote: never the quoted notification.

The notification a manager answers holds internal text (deadlines, the customer's
mail, internal notes). Mail clients quote it under the reply in their own way:
Outlook's ``From:/Sent:`` block (``От:/Отправлено:``, ``Від:/Надіслано:``,
``Von:/Gesendet:``), Gmail's and Thunderbird's "On … wrote:" line (``пишет:``,
``пише:``, ``schrieb``), Apple Mail's "On … at …, X wrote:", ``-----Original
Message-----`` and ``>`` prefixes. mail-parser-reply recognises the English and
German forms; Russian and Ukrainian ones are added to its language table here.

On top of the library, two rules keep the customer safe when a client does
something nobody anticipated ("relay less, never the internal text"):

- a generic cut at the first quote marker of any of those families, and
- a check against the notification itself: the reply is cut at the first line
  that also appears in the notification the manager received (any line of more
  than a few words), so unrecognised quoting still cannot leak it.
"""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser
from mailparser_reply.constants import MAIL_LANGUAGES, QUOTED_MATCH_INCLUDE

_Q = QUOTED_MATCH_INCLUDE


def _from_header(names: str) -> str:
    return (r"((?:(?:^|\n|\n" + _Q + r")[* ]*(?:" + names
            + r"):[ *]*(?:\s{,2}).*){2,}(?:\n.*){,1})")


MAIL_LANGUAGES.setdefault("ru", {
    # Gmail: "пн, 23 нояб. 2026 г. в 10:00, Имя <a@b>:"; Thunderbird: "… Имя пишет:";
    # Apple Mail: "23 нояб. 2026 г., в 10:00, Имя <a@b> написал(а):".
    "wrote_header": r"^(" + _Q + r"(?:.{0,120}\s(?:пишет|написал(?:\(а\)|а)?)\s?:|"
                    + r".{0,120}<[^<>\s]+@[^<>\s]+>\s?:))$",
    "from_header": _from_header("От|Отправлено|Кому|Тема|Дата|Копия"),
    "disclaimers": [r"(?:Конфиденциально|Внимание):"],
    "signatures": [r"С уважением", r"Спасибо,"],
    "sent_from": r"Отправлено с (?:моего )?(?:iPhone|iPad|Android|телефона)",
})
MAIL_LANGUAGES.setdefault("uk", {
    # Gmail: "пн, 23 лист. 2026 р. о 10:00 Ім'я <a@b> пише:"; Thunderbird: "… Ім'я пише:";
    # Apple Mail: "23 лист. 2026 р. о 10:00 Ім'я <a@b> написав(ла):".
    "wrote_header": r"^(" + _Q + r"(?:.{0,120}\s(?:пише|написав(?:\(ла\)|ла)?)\s?:|"
                    + r".{0,120}<[^<>\s]+@[^<>\s]+>\s?:))$",
    "from_header": _from_header("Від|Надіслано|Кому|Тема|Дата|Копія"),
    "disclaimers": [r"(?:Конфіденційно|Увага):"],
    "signatures": [r"З повагою", r"Дякую,"],
    "sent_from": r"Надіслано (?:з|із) (?:мого )?(?:iPhone|iPad|Android|телефона)",
})

LANGUAGES = ["en", "de", "ru", "uk"]

# Generic quote starts of every family above, applied after the library.
_CUTS = [
    re.compile(r"^\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Исходное сообщение|"
               r"Оригинальное сообщение|Оригінальне повідомлення|Forwarded message|"
               r"Пересылаемое сообщение|Переслане повідомлення)\s*-{2,}", re.I),
    re.compile(r"^\s*>"),
    re.compile(r"^.{0,160}\b(?:wrote|schrieb|пишет|пише|написал|написала|написав|написала)"
               r"(?:\(а\)|\(ла\))?\s*:\s*$", re.I),
    re.compile(r"^.{0,160}<[^<>\s]+@[^<>\s]+>\s*:\s*$"),
    re.compile(r"^\s*[*_]*(?:From|Von|От|Від|De|Da|Van)[*_]*\s*:.*$", re.I),
    re.compile(r"^\s*_{10,}\s*$"),  # Outlook web's separator line
]
_MIN_SHARED_WORDS = 4


def latest_reply(text: str, quoted_sources: list[str] = ()) -> str:  # type: ignore[assignment]
    """The text the sender wrote on top, without quotes of earlier mail.

    ``quoted_sources`` are texts the reply must never repeat (the notifications
    the manager was sent); a line shared with them ends the reply.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    reply = EmailReplyParser(languages=LANGUAGES).parse_reply(text) or ""
    lines = reply.split("\n")
    cut = len(lines)
    for index, line in enumerate(lines):
        if any(pattern.match(line) for pattern in _CUTS):
            cut = index
            break
    lines = lines[:cut]
    forbidden = _significant_lines(quoted_sources)
    for index, line in enumerate(lines):
        if _normal(line) in forbidden:
            lines = lines[:index]
            break
    return "\n".join(lines).strip()


def _normal(line: str) -> str:
    return " ".join(line.lstrip("> \t").split()).lower()


def _significant_lines(sources: list[str]) -> set[str]:
    found = set()
    for source in sources:
        for line in source.splitlines():
            normal = _normal(line)
            if len(normal.split()) >= _MIN_SHARED_WORDS:
                found.add(normal)
    return found
