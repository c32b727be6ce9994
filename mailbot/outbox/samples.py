"""Sample data for every kind of mail: the one place ``templates check`` and
``templates preview`` take their variables from.

Each sample has exactly the variables the real feature passes (see
templates/README.md); when a feature adds a variable, it is added here too, so
``templates check`` keeps proving every shipped and admin template renders with
it. The values are realistic — a token, names in Cyrillic, deadlines formatted in
the customer's zone — so a preview reads like a real mail.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

from mailbot.outbox.render import KINDS, format_local

SAMPLE_ZONE = "Europe/Kyiv"
_RECEIVED = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)
_PRELIMINARY = datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc)
_DETAILED = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


class _Local:
    """A marker for a sample instant, formatted when the sample is asked for in a language."""

    def __init__(self, value: datetime) -> None:
        self.value = value


def _local(value: datetime) -> _Local:
    return _Local(value)


def _resolve(value: Any, language: str) -> Any:
    if isinstance(value, _Local):
        return format_local(value.value, SAMPLE_ZONE, language=language)
    if isinstance(value, dict):
        return {key: _resolve(item, language) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, language) for item in value]
    return copy.deepcopy(value)


_BASE: dict[str, Any] = {
    "case": {"token": "[SUP-42]", "number": 42, "subject": "Printer on fire",
             "service_level": "standard", "status": "open"},
    "customer": {"name": "Олена Коваленко", "email": "olena@customer.example"},
    "subject": "Printer on fire",
    "timezone": SAMPLE_ZONE,
    "support_address": "support@example.com",
}
_MANAGER = {"name": "Ivan Petrenko", "email": "ivan@example.com"}
_CUSTOMER_TEXT = ("Hello,\nthe printer on the 3rd floor is on fire again.\n"
                  "Could someone come by today?\n\nOlena")

_EXTRA: dict[str, dict[str, Any]] = {
    "ack": {
        "received_at": _local(_RECEIVED),
        "preliminary_due": _local(_PRELIMINARY),
        "detailed_due": _local(_DETAILED),
    },
    "ack_unregistered": {  # the same variables: only the wording differs
        "received_at": _local(_RECEIVED),
        "preliminary_due": _local(_PRELIMINARY),
        "detailed_due": _local(_DETAILED),
    },
    "manager_new_case": {
        "manager": _MANAGER,
        "received_at": _local(_RECEIVED),
        "preliminary_due": _local(_PRELIMINARY),
        "detailed_due": _local(_DETAILED),
        "text": _CUSTOMER_TEXT,
        "attachments": ["photo.jpg", "error-log.txt"],
        "reply_to": "support+SUP-42.5f1c09a7e2@example.com",
    },
    "manager_update": {  # the customer wrote again on a case the manager already has
        "manager": _MANAGER,
        "received_at": _local(datetime(2026, 11, 23, 12, 5, tzinfo=timezone.utc)),
        "preliminary_due": _local(_PRELIMINARY),
        "detailed_due": _local(_DETAILED),
        "text": "One more thing: it also smells of toner.\n\nOlena",
        "attachments": [],
        "reply_to": "support+SUP-42.5f1c09a7e2@example.com",
    },
    "relay": {
        "manager": _MANAGER,
        "text": "Dear Olena,\nour technician will be with you at 14:00 today.\n\nIvan",
        "attachments": ["work-order.pdf"],
    },
    "followup": {
        "manager": _MANAGER,
        "last_customer_at": _local(datetime(2026, 11, 23, 21, 40, tzinfo=timezone.utc)),
        "updates": [
            {"at": _local(datetime(2026, 11, 23, 23, 15, tzinfo=timezone.utc)),
             "summary": "The technician ordered a replacement fuser unit."},
        ],
        "preliminary_due": _local(_PRELIMINARY),
        "detailed_due": _local(_DETAILED),
    },
    "reminder": {
        "manager": _MANAGER,
        "deadline": {"kind": "preliminary", "due": _local(_PRELIMINARY), "remaining": "2 h"},
        "received_at": _local(_RECEIVED),
    },
    "escalation": {
        "manager": _MANAGER,
        "deadline": {"kind": "detailed", "due": _local(_DETAILED), "overdue_by": "1 h 30 min"},
        "received_at": _local(_RECEIVED),
    },
    "closed": {
        "manager": _MANAGER,
        "closed_at": _local(datetime(2026, 11, 24, 12, 30, tzinfo=timezone.utc)),
    },
}

assert set(KINDS) <= set(_EXTRA), "every kind of mail needs sample data"


def sample_context(kind: str, language: str = "en") -> dict[str, Any]:
    """A fresh copy of the sample variables for ``kind``, times written as a customer
    speaking ``language`` gets them (callers may change the copy)."""
    if kind not in _EXTRA:
        raise KeyError(f"no sample data for {kind!r}: add it to mailbot/outbox/samples.py")
    resolved: dict[str, Any] = _resolve({**_BASE, **_EXTRA[kind]}, language)
    return resolved
