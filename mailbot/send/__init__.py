"""send: the last stage — hand a composed message to SMTP, or to a directory."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol


class Sender(Protocol):
    """Delivers composed messages.

    ``send`` raises ``TemporarySendError`` when a later attempt may succeed and
    ``PermanentSendError`` when it cannot; anything it returns from means the
    message was accepted. ``close`` ends a connection kept between sends.
    """

    async def send(self, message: EmailMessage, recipients: list[str]) -> None: ...

    async def close(self) -> None: ...
