"""A Maildir as a mail source: the demo's inbox, and local delivery without an IMAP server.

New mail is read from ``new/`` (and unseen mail from ``cur/``); after the commit a
file moves to ``cur/`` with the ``S`` flag, as a mail client would mark it read.
A crash between commit and move means the file is read again next time and
recognised as a duplicate by its idempotency key.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from mailbot.config import MailboxConfig
from mailbot.fetch import Fetched
from mailbot.context import Delivery


class MaildirSource:
    uidvalidity = None

    def __init__(self, config: MailboxConfig) -> None:
        assert config.path is not None
        self.config = config
        self.name = config.name
        self.folder = str(config.path)
        self.root = Path(config.path)

    def open(self) -> None:
        for sub in ("new", "cur", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def _pending(self) -> list[Path]:
        new = sorted((self.root / "new").iterdir())
        unseen = [p for p in sorted((self.root / "cur").iterdir()) if "S" not in _flags(p.name)]
        return [p for p in [*new, *unseen] if p.is_file() and not p.name.startswith(".")]

    def batches(self, after_uid: int = 0) -> Iterator[list[Fetched]]:
        batch: list[Fetched] = []
        size = 0
        for path in self._pending():
            try:
                raw = path.read_bytes()
                mtime = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
            except FileNotFoundError:  # another reader moved it meanwhile
                continue
            batch.append(Fetched(raw, Delivery(self.name, "maildir", None, None, mtime), path))
            size += len(raw)
            if len(batch) >= self.config.batch_size or size >= self.config.batch_bytes:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def mark_done(self, items: list[Fetched]) -> None:
        for item in items:
            path = item.ref
            if not isinstance(path, Path) or not path.exists():
                continue
            base = path.name.split(":")[0]
            flags = "".join(sorted(set(_flags(path.name)) | {"S"}))
            os.replace(path, self.root / "cur" / f"{base}:2,{flags}")

    def quarantine(self, items: list[Fetched]) -> str | None:
        """Move quarantined files into the Maildir++ subfolder ``.<quarantine_folder>``.

        Left in ``new/`` they would be read (and quarantined again) on every pass.
        The file is moved, never deleted, and keeps its name.
        """
        target = self.root / f".{self.config.quarantine_folder}"
        moved = False
        for item in items:
            path = item.ref
            if not isinstance(path, Path) or not path.exists():
                continue
            for sub in ("new", "cur", "tmp"):
                (target / sub).mkdir(parents=True, exist_ok=True)
            os.replace(path, target / "cur" / path.name)
            moved = True
        return target.name if moved else None

    def wait(self, stop: threading.Event) -> None:
        stop.wait(self.config.poll_interval_s)

    def close(self) -> None:
        return None


def _flags(name: str) -> str:
    _, sep, info = name.partition(":2,")
    return info if sep else ""
