"""A sender that writes each message as an .eml file: the demo's outgoing mail, dry runs.

The file name is the Message-ID's local part (it is ours, never customer text),
written atomically so a reader never sees half a message; a resend of the same
Message-ID overwrites the same file, as an SMTP server would deduplicate it.
"""

from __future__ import annotations

import os
import re
import tempfile
from email.message import EmailMessage
from pathlib import Path


class DirectorySender:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def path_for(self, message: EmailMessage) -> Path:
        return self.directory / eml_name(str(message["Message-ID"]))

    async def send(self, message: EmailMessage, recipients: list[str]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        data = bytes(message)
        envelope = f"X-Envelope-To: {', '.join(recipients)}\r\n".encode()
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(envelope + data)
        os.replace(tmp, self.path_for(message))

    async def close(self) -> None:
        return None


def eml_name(message_id: str) -> str:
    """The file a Message-ID is written to: its local part, reduced to safe characters."""
    local = message_id.strip("<> ").split("@")[0]
    return (re.sub(r"[^A-Za-z0-9._-]", "_", local)[:120] or "message") + ".eml"
