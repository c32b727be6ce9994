"""Where log lines go and what they look like: ``[logging] format`` = text, kv or json.

Everything in mailbot logs through the standard library (``log.info("... %s", x)``);
this module only chooses the formatter of the one stderr handler, so no call site
knows or cares which format is on. ``text`` is the classic human line and stays the
default, so existing installs see nothing change. ``kv`` (logfmt) and ``json`` are for
log shippers: structlog's ``ProcessorFormatter`` renders stdlib records, and fields
passed as ``extra={...}`` become real keys (``mailbox=support uid=7`` /
``{"mailbox": "support", "uid": 7}``) instead of being lost in the message text. In
``text`` the same fields are appended to the line as ``key=value``, so the one line
per processed message reads the same in every format.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

import structlog
from structlog.processors import LogfmtRenderer

LogFormat = Literal["text", "kv", "json"]
WIRE_TRACE_LOGGERS = ("imapclient", "aiosmtplib")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What every LogRecord has on its own; anything else on a record came in through ``extra``.
_STANDARD_KEYS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime"}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra`` fields of a record, in the order they were given."""
    return {key: value for key, value in record.__dict__.items()
            if key not in _STANDARD_KEYS and not key.startswith("_")}


class TextFormatter(logging.Formatter):
    """The classic line, with any structured fields appended as logfmt ``key=value``."""

    _fields = LogfmtRenderer(bool_as_flag=False)

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = record_fields(record)
        if not fields:
            return line
        head, newline, rest = line.partition("\n")  # a traceback stays below the line
        return f"{head} {self._fields(None, '', fields)}{newline}{rest}"


def _lead(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """When, how bad, who, what — then the fields: the order a person scans a line in."""
    first = {key: event_dict.pop(key) for key in _LEAD if key in event_dict}
    return {**first, **event_dict}


_LEAD = ("ts", "level", "logger", "event")


def structured_formatter(fmt: Literal["kv", "json"]) -> logging.Formatter:
    """A formatter that renders every stdlib record as one logfmt or JSON line."""
    renderer: Any = (structlog.processors.JSONRenderer(ensure_ascii=False, default=str)
                     if fmt == "json" else LogfmtRenderer(bool_as_flag=False))
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # A traceback is one escaped value of the line, never lines of its own.
            structlog.processors.format_exc_info,
            _lead,
            renderer,
        ],
    )


def make_formatter(fmt: LogFormat) -> logging.Formatter:
    return TextFormatter() if fmt == "text" else structured_formatter(fmt)


def setup_logging(level: str, fmt: LogFormat = "text", stream: TextIO | None = None) -> None:
    """Send every log record at ``level`` and above to ``stream`` (stderr) in ``fmt``.

    Replaces whatever handlers the root logger had: called once per command, and again
    by tests that capture the output.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    logging.basicConfig(level=getattr(logging, level), handlers=[handler], force=True)
    # Alembic announces its dialect on every schema check; only its problems matter here.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, getattr(logging, level)))
    # mail-parser warns on every unhandled part and logs whole header values on errors.
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)
    # Their DEBUG is a wire trace: whole messages, customers' text. Never in our log, not
    # even with --debug (a log is copied to places the mailbox is not).
    for wire in WIRE_TRACE_LOGGERS:
        logging.getLogger(wire).setLevel(max(logging.INFO, getattr(logging, level)))
