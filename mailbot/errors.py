"""The failures mailbot knows about.

Outcomes of processing (a message quarantined, an ack suppressed) are values, not
exceptions; what lives here are the conditions that stop an operation and that the
command line turns into an exit code and one readable line instead of a traceback.
"""

from __future__ import annotations


class MailbotError(Exception):
    """Base of every error mailbot raises on purpose."""


class ConfigError(MailbotError):
    """Raised at start-up when the configuration file cannot be used.

    Carries the file, the dotted key and the reason, so the admin knows exactly
    which line to fix.
    """

    def __init__(self, file: str, key: str, why: str) -> None:
        self.file, self.key, self.why = file, key, why
        super().__init__(f"{file}: {key}: {why}" if key else f"{file}: {why}")


class DatabaseNotReady(MailbotError):
    """Raised when the database schema is older than the code (or missing)."""


class TemplateError(MailbotError):
    """Raised when a template cannot be loaded or rendered and no fallback exists."""


class TemporarySendError(MailbotError):
    """Raised by a sender when delivery may succeed later (4xx, connection refused)."""


class PermanentSendError(MailbotError):
    """Raised by a sender when retrying cannot help (5xx: bad recipient, rejected content)."""


class ParseError(MailbotError):
    """Raised when raw bytes cannot be turned into a message; the caller quarantines them."""
