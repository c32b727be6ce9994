"""Structured logs of a real drain (Dovecot in, aiosmtpd out): one line per message, no secrets.

The config carries an IMAP password, an SMTP password and the HMAC secret, and every
message a unique marker in its body; none of them may reach the log, in any format,
even at DEBUG. Each message processed gets exactly one line with the documented keys.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from factories import config_data, imap_mailbox, make_app, make_message, smtp_section
from mailbot.clock import SystemClock
from mailbot.config import config_from_dict
from mailbot.daemon import run_once
from mailbot.logsetup import WIRE_TRACE_LOGGERS, setup_logging
from servers import imap_append_many

pytestmark = pytest.mark.integration

KEYS = {"mailbox", "folder", "uid", "message_id", "case", "new_case", "outcome", "classification",
        "ack", "total_ms", "parse_ms", "store_ms"}
_KV = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


@pytest.fixture
def capture_logs() -> Iterator[Callable[[str], io.StringIO]]:
    """Point mailbot's logging at a buffer in a given format; put everything back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    quiet = {name: logging.getLogger(name).level
             for name in ("alembic", "mailparser", *WIRE_TRACE_LOGGERS, "mail.log")}

    def capture(fmt: str) -> io.StringIO:
        buffer = io.StringIO()
        setup_logging("DEBUG", fmt, stream=buffer)  # type: ignore[arg-type]
        # The SMTP sink is the test's server, not mailbot: its own wire trace is not ours.
        logging.getLogger("mail.log").setLevel(logging.INFO)
        return buffer

    yield capture
    root.handlers[:], level = saved
    root.setLevel(level)
    for name, old in quiet.items():
        logging.getLogger(name).setLevel(old)


def _kv(line: str) -> dict[str, str]:
    return {key: value[1:-1].replace('\\"', '"') if value.startswith('"') else value
            for key, value in _KV.findall(line)}


def processed_lines(text: str, fmt: str) -> list[dict[str, Any]]:
    """The per-message lines of a log, as dicts (strings for kv and text)."""
    if fmt == "json":
        parsed = [json.loads(line) for line in text.splitlines()]  # every line is one object
        return [entry for entry in parsed if entry["event"] == "message processed"]
    lines = [line for line in text.splitlines() if "message processed" in line]
    if fmt == "text":
        return [_kv(line.split("message processed", 1)[1]) for line in lines]
    return [_kv(line) for line in lines]


@pytest.mark.parametrize("fmt", ["json", "kv", "text"])
def test_drain_logs_one_line_per_message_and_no_secret(
        fmt: str, tmp_path: Path, imap_account: Any, smtp_server: Any,
        monkeypatch: pytest.MonkeyPatch, capture_logs: Callable[[str], io.StringIO]) -> None:
    # Five messages (new case, follow-up on it, auto-reply, duplicate, oversize) drained over
    # IMAP: five lines with mailbox, uid, case, outcome, classification and timings; the
    # passwords, the secret and the bodies appear nowhere in the log.
    marker = f"BODY-MARKER-{secrets.token_hex(8)}"
    smtp_password = f"smtp-pw-{secrets.token_hex(8)}"
    hmac_secret = f"hmac-{secrets.token_hex(8)}"
    monkeypatch.setenv("OBS_SMTP_PW", smtp_password)
    monkeypatch.setenv("OBS_SECRET", hmac_secret)
    data = config_data(
        tmp_path,
        mailboxes=[imap_mailbox(imap_account, name="mb0")],
        smtp=smtp_section(smtp_server, username="mailbot", password_env="OBS_SMTP_PW"),
        security={"secret_env": "OBS_SECRET"},
        managers=[{"email": "olga@staff.test", "name": "Olga"}],
        storage={"dir": str(tmp_path / "storage"), "max_message_size": 4096},
        logging={"format": fmt},
    )
    app = make_app(config_from_dict(data, source=tmp_path / "mailbot.toml"), SystemClock())
    first = make_message(body=f"Hello,\nthe printer is on fire. {marker}\n")
    messages = [
        first,
        make_message(subject="Re: [SUP-1] Printer on fire", message_id="<m2@customer.test>",
                     body=f"Any news? {marker}\n"),
        make_message(sender="robot@customer.test", subject="Out of office",
                     message_id="<ooo@customer.test>", body=f"I am away. {marker}\n",
                     Auto_Submitted="auto-replied"),
        first,
        make_message(sender="bob@customer.test", message_id="<big@customer.test>",
                     body=f"{marker}\n" + "x" * 5000 + "\n"),
    ]
    uids = imap_append_many(imap_account, messages)
    buffer = capture_logs(fmt)

    report = run_once(app)

    assert report.ok and len(report.drained[0].outcomes) == 5
    assert len(smtp_server.messages) >= 2  # the ack and the manager's notification were sent
    text = buffer.getvalue()
    for needle in (marker, smtp_password, hmac_secret, imap_account.password):
        assert needle not in text, f"{needle!r} leaked into the {fmt} log"
    lines = processed_lines(text, fmt)
    assert sorted(str(line["uid"]) for line in lines) == sorted(str(uid) for uid in uids)
    for line in lines:
        assert KEYS <= set(line), f"missing {KEYS - set(line)} in {line}"
        assert line["mailbox"] == "mb0" and line["folder"] == "INBOX"
        assert float(line["total_ms"]) >= max(float(line["parse_ms"]), float(line["store_ms"]))
    by_uid = {str(line["uid"]): line for line in lines}
    new, followup, robot, duplicate, big = (by_uid[str(uid)] for uid in uids)
    assert (new["case"], new["outcome"], new["classification"]) == ("SUP-1", "stored", "customer")
    assert str(new["ack"]).lower() == "true" and str(new["new_case"]).lower() == "true"
    assert (followup["case"], followup["outcome"]) == ("SUP-1", "stored")
    assert str(followup["new_case"]).lower() == "false"
    assert (robot["classification"], robot["outcome"]) == ("auto_reply", "stored")
    assert duplicate["outcome"] == "duplicate"
    assert big["outcome"] == "quarantined" and "max_message_size" in big["reason"]
    if fmt == "json":
        assert isinstance(new["uid"], int) and isinstance(new["total_ms"], float)
        assert duplicate["case"] is None
