"""outbox: mail waiting to go out — queued in the ingest transaction, rendered and sent later."""

#: The acknowledgements of a new case: the same promise in different words (``ack_unregistered``
#: goes to senders the customer directory does not know). Whatever counts or follows acks — the
#: loop rate limit, ``acknowledged_at``, Auto-Submitted, relay threading — counts both.
ACK_KINDS: frozenset[str] = frozenset({"ack", "ack_unregistered"})
