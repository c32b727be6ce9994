"""observe: what an operator sees of a running mailbot without reading its database.

``processed`` writes the one log line per message; ``metrics`` keeps the Prometheus
counters of one daemon (a private registry, so several daemons or tests in one
process never mix their numbers); ``reach`` remembers which mailboxes answer; ``health``
turns that and the outbox into the ``/healthz`` verdict; ``server`` serves both.
"""
