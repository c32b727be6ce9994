"""Quote stripping: what each mail client puts under a manager's reply never reaches the customer."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from mailbot.quoting import latest_reply

REPLY = "Hello Alice,\n\nthe printer driver is fixed; please restart it.\n\nOlga"
SECRET = "INTERNAL: customer is on the watch list, do not offer a refund"
NOTIFICATION = (f"New case [SUP-1] from alice@customer.test\n{SECRET}\n"
                "Preliminary answer due Tue 24 Nov 2026, 10:00 (Europe/Kyiv)\n")
QUOTED = "\n".join("> " + line for line in NOTIFICATION.splitlines())
PLAIN = NOTIFICATION

CLIENTS = {
    "outlook-desktop-en": f"{REPLY}\n\nFrom: Support <support@example.test>\nSent: Monday, "
                          f"November 23, 2026 10:00 AM\nTo: Olga <olga@example.test>\nSubject: "
                          f"[SUP-1] New case\n\n{PLAIN}",
    "outlook-desktop-ru": f"{REPLY}\n\nОт: Support <support@example.test>\nОтправлено: 23 ноября "
                          f"2026 г. 10:00\nКому: Olga <olga@example.test>\nТема: [SUP-1] Новое "
                          f"обращение\n\n{PLAIN}",
    "outlook-desktop-uk": f"{REPLY}\n\nВід: Support <support@example.test>\nНадіслано: 23 "
                          f"листопада 2026 р. 10:00\nКому: Olga <olga@example.test>\nТема: [SUP-1]"
                          f"\n\n{PLAIN}",
    "outlook-desktop-de": f"{REPLY}\n\nVon: Support <support@example.test>\nGesendet: Montag, 23. "
                          f"November 2026 10:00\nAn: Olga <olga@example.test>\nBetreff: [SUP-1]"
                          f"\n\n{PLAIN}",
    "outlook-web-bold": f"{REPLY}\n\n________________________________\n*From:* Support "
                        f"<support@example.test>\n*Sent:* Monday, November 23, 2026 10:00\n"
                        f"*To:* Olga\n*Subject:* [SUP-1]\n\n{PLAIN}",
    "outlook-original-message": f"{REPLY}\n\n-----Original Message-----\n{PLAIN}",
    "gmail-en": f"{REPLY}\n\nOn Mon, 23 Nov 2026 at 10:00, Support <support@example.test> wrote:"
                f"\n\n{QUOTED}",
    "gmail-en-wrapped": f"{REPLY}\n\nOn Mon, 23 Nov 2026 at 10:00, Support Team of Example <\n"
                        f"support@example.test> wrote:\n\n{QUOTED}",
    "gmail-ru": f"{REPLY}\n\nпн, 23 нояб. 2026 г. в 10:00, Support <support@example.test>:\n\n"
                f"{QUOTED}",
    "gmail-uk": f"{REPLY}\n\nпн, 23 лист. 2026 р. о 10:00 Support <support@example.test> пише:\n\n"
                f"{QUOTED}",
    "gmail-de": f"{REPLY}\n\nAm Mo., 23. Nov. 2026 um 10:00 Uhr schrieb Support "
                f"<support@example.test>:\n\n{QUOTED}",
    "thunderbird-en": f"{REPLY}\n\nOn 23.11.2026 10:00, Support wrote:\n{QUOTED}",
    "thunderbird-ru": f"{REPLY}\n\n23.11.2026 10:00, Support пишет:\n{QUOTED}",
    "thunderbird-uk": f"{REPLY}\n\n23.11.2026 10:00, Support пише:\n{QUOTED}",
    "thunderbird-de": f"{REPLY}\n\nAm 23.11.26 um 10:00 schrieb Support:\n{QUOTED}",
    "apple-mail-en": f"{REPLY}\n\n> On 23 Nov 2026, at 10:00, Support <support@example.test> "
                     f"wrote:\n> \n{QUOTED}",
    "apple-mail-ru": f"{REPLY}\n\n23 нояб. 2026 г., в 10:00, Support <support@example.test> "
                     f"написал(а):\n\n{QUOTED}",
    "iphone-en": f"{REPLY}\n\nSent from my iPhone\n\n> On 23 Nov 2026, at 10:00, Support "
                 f"<support@example.test> wrote:\n> \n{QUOTED}",
    "android-gmail": f"{REPLY}\n\nOn Mon, Nov 23, 2026, 10:00 Support <support@example.test> "
                     f"wrote:\n\n{QUOTED}",
    "unknown-client-unmarked": f"{REPLY}\n\n{PLAIN}",  # only the safety net can catch this
    "bottom-quote-only": f"{QUOTED}\n\n{REPLY}",
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_quoted_notification_never_survives(client: str) -> None:
    # Whatever the client, the notification's internal text is gone from what we relay.
    result = latest_reply(CLIENTS[client], [NOTIFICATION])
    assert SECRET not in result
    assert "watch list" not in result
    if client != "bottom-quote-only":
        assert result.startswith("Hello Alice,")
        assert "printer driver is fixed" in result


def test_plain_reply_is_kept_whole() -> None:
    # A reply with no quote at all, signature included, is relayed as written.
    assert latest_reply(REPLY, [NOTIFICATION]) == REPLY


def test_short_common_lines_do_not_cut() -> None:
    # A line like "Thanks" shared with the notification is not reason to cut.
    text = "Thanks\n\nAll done now."
    assert latest_reply(text, ["Thanks\nsomething else entirely here"]) == text


def _corpus() -> Path:
    return Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "mail-parser-reply"


def test_corpus_reply_bodies_are_cut_to_a_prefix() -> None:
    # Every reply body of the mail-parser-reply corpus yields its own opening words, and a body
    # that quotes an earlier mail under a quote header is always cut before that header.
    root = _corpus()
    if not root.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"corpus missing: {root}")
        pytest.skip("corpus missing")
    checked = cut = 0
    for path in sorted(root.rglob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        result = latest_reply(text)
        # Separator lines ("____", "--") are normalised by the library; compare the words.
        words, kept = _words(text), _words(result)
        assert kept == words[:len(kept)], f"{path.name}: the reply is not the top of the body"
        header = _QUOTE_HEADER.search(text)
        if header and text[:header.start()].strip():
            assert len(result) <= header.start(), f"{path.name}: quoted part survived"
            cut += 1
        checked += 1
    assert checked >= 30 and cut >= 10, (checked, cut)


def _words(text: str) -> list[str]:
    return [w for w in text.split() if not re.fullmatch(r"[-_=*]{2,}", w)]


# "On … wrote:", "Am … schrieb …:", and an Outlook "From:" line followed by "Sent:"/"Date:".
_QUOTE_HEADER = re.compile(r"^(?:On .{0,200}wrote:|Am .{0,200}schrieb.{0,200}:|"
                           r"[*]?From:.*\n[*]?(?:Sent|Date):)", re.M)
