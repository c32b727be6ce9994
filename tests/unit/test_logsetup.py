"""[logging] format: text stays the classic line; kv and json carry `extra` fields as keys."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from factories import config_data, make_config
from mailbot.config import config_from_dict
from mailbot.errors import ConfigError
from mailbot.logsetup import setup_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def emit(fmt: str) -> list[str]:
    buffer = io.StringIO()
    setup_logging("INFO", fmt, stream=buffer)  # type: ignore[arg-type]
    log = logging.getLogger("mailbot.test")
    log.info("mailbox %s: finishing %d flags", "support", 3)
    log.info("message processed", extra={"mailbox": "support", "uid": 7, "case": None,
                                         "ack": True, "total_ms": 1.5})
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("failed on %s", "uid 9")
    log.debug("not shown at INFO")
    return buffer.getvalue().splitlines()


def test_text_is_the_classic_line_with_fields_appended(restore_logging: None) -> None:
    # text: "<time> LEVEL logger: message", extra fields as key=value, traceback below.
    lines = emit("text")
    assert lines[0].endswith(" INFO mailbot.test: mailbox support: finishing 3 flags")
    assert lines[1].endswith("INFO mailbot.test: message processed mailbox=support uid=7 case= "
                             "ack=true total_ms=1.5")
    assert lines[2].endswith("ERROR mailbot.test: failed on uid 9")
    assert lines[3] == "Traceback (most recent call last):" and "ValueError: bad" in lines[-2]
    assert not any("not shown" in line for line in lines)


def test_json_is_one_object_per_line_with_real_keys(restore_logging: None) -> None:
    # json: every record one parseable line; extra fields keep their types; a traceback is a
    # single escaped string, so a log shipper never sees half an entry.
    entries = [json.loads(line) for line in emit("json")]
    assert len(entries) == 3
    plain, fields, failed = entries
    assert plain["event"] == "mailbox support: finishing 3 flags"
    assert (plain["level"], plain["logger"]) == ("info", "mailbot.test")
    assert plain["ts"].endswith("Z")
    assert fields["uid"] == 7 and fields["case"] is None and fields["ack"] is True
    assert list(fields)[:4] == ["ts", "level", "logger", "event"]
    assert failed["level"] == "error" and "ValueError: bad\nthing" in failed["exception"]


def test_kv_is_logfmt(restore_logging: None) -> None:
    # kv: logfmt, values with spaces quoted, newlines escaped: one line per record.
    lines = emit("kv")
    assert len(lines) == 3
    assert 'level=info logger=mailbot.test event="mailbox support: finishing 3 flags"' in lines[0]
    assert lines[1].endswith('event="message processed" mailbox=support uid=7 case= ack=true '
                             'total_ms=1.5')
    assert "level=error" in lines[2] and "\\nValueError: bad\\nthing" in lines[2]


def test_wire_traces_stay_off_even_at_debug(restore_logging: None) -> None:
    # imapclient's and aiosmtplib's DEBUG output is the raw protocol (whole messages).
    setup_logging("DEBUG", "json", stream=io.StringIO())  # type: ignore[arg-type]
    assert logging.getLogger("mailbot").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("aiosmtplib").isEnabledFor(logging.DEBUG)


def test_format_is_validated(tmp_path: Path) -> None:
    # A typo in the format is a config error naming the key, and text is the default.
    assert make_config(tmp_path).logging.format == "text"
    with pytest.raises(ConfigError) as caught:
        config_from_dict(config_data(tmp_path, logging={"format": "xml"}),
                         source=tmp_path / "mailbot.toml")
    assert caught.value.key == "logging.format"
