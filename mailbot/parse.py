from mailbot.ingest.parse import parse  # noqa: F401  (temporary, moved when the helper finishes)
