"""backfill: ``mailbot import`` — an existing mailbox's history turned into cases.

History threads like live mail (same parse → classify → thread → store path) but is
only recorded: the pipeline runs with ``PipelineContext.historic`` set, so nothing
is sent or scheduled for it (``record``). The import reads the folder read-only and
commits per batch with its own checkpoint (``run``), reporting progress on stderr
(``progress``).
"""

from __future__ import annotations

IMPORT_PREFIX = "import:"


def checkpoint_key(folder: str) -> str:
    """The ``MailboxState.folder`` of an import of ``folder``, and the folder its mail is
    recorded under (so the daemon's drain of ``folder`` never flags or moves it)."""
    return f"{IMPORT_PREFIX}{folder}"


def is_import_folder(folder: str | None) -> bool:
    return bool(folder) and str(folder).startswith(IMPORT_PREFIX)
