"""The only aiosmtplib user: deliver over SMTP, and say whether a failure is final.

One connection serves a whole outbox flush. A dropped connection or a 4xx is
retried a few times at once with tenacity (jittered exponential backoff); what
still fails is ``TemporarySendError`` and the outbox row waits for its next
attempt. A 5xx is ``PermanentSendError``: retrying cannot help, the case is told.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage

import aiosmtplib
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from mailbot.config import SmtpConfig, parse_interval
from mailbot.errors import PermanentSendError, TemporarySendError

log = logging.getLogger("mailbot.smtp")


class SmtpSender:
    def __init__(self, config: SmtpConfig, attempts: int = 3, max_wait_s: float = 2.0) -> None:
        self.config = config
        self.attempts = attempts
        self.max_wait_s = max_wait_s
        self._client: aiosmtplib.SMTP | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        secret = self.config.secret()
        client = aiosmtplib.SMTP(
            hostname=self.config.host,
            port=self.config.port,
            use_tls=self.config.ssl,
            start_tls=self.config.starttls,
            timeout=parse_interval(self.config.timeout).total_seconds(),
        )
        await client.connect()
        if self.config.username and secret is not None:
            await client.login(self.config.username, secret.get_secret_value())
        self._client = client
        return client

    async def send(self, message: EmailMessage, recipients: list[str]) -> None:
        """See ``Sender``."""
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(TemporarySendError),
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=0.2, max=self.max_wait_s),
            reraise=True,
        ):
            with attempt:
                await self._send_once(message, recipients)

    async def _send_once(self, message: EmailMessage, recipients: list[str]) -> None:
        try:
            client = await self._connect()
            errors, _response = await client.send_message(message, recipients=recipients)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            if all(code >= 500 for code in codes):
                raise PermanentSendError(f"all recipients refused: {exc.recipients[0]}") from None
            raise TemporarySendError(f"recipients refused: {exc.recipients[0]}") from None
        except aiosmtplib.SMTPResponseException as exc:
            await self._drop()
            if exc.code >= 500:
                raise PermanentSendError(f"{exc.code} {exc.message}") from None
            raise TemporarySendError(f"{exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self._drop()
            raise TemporarySendError(f"{type(exc).__name__}: {exc}") from None
        if errors:
            # Some recipients refused, others accepted: the mail went out; note who failed.
            log.warning("message %s: some recipients refused: %s", message["Message-ID"], errors)

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # a broken connection may fail to close; it is gone either way
                pass

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()

