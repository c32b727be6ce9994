"""Ingest: getting mail out of the mailbox and into ``Inbound`` values.

``parse`` turns raw bytes into an ``Inbound`` (the only user of mail-parser).
"""
