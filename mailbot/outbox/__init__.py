"""outbox: mail waiting to go out — queued in the ingest transaction, rendered and sent later."""
