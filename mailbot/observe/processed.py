"""One log line per message processed: where it came from, what became of it, how long it took.

The fields travel as ``extra`` so ``[logging] format = "json"`` gets real keys and
``kv`` gets ``key=value`` pairs a log shipper can index. Deliberately absent: the
body, the subject, addresses and anything from the config — a log line is copied to
places the mailbox is not, so it carries identifiers and verdicts, never content.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mailbot.context import Delivery, Outcome

log = logging.getLogger("mailbot.ingest")

T = TypeVar("T")
#: A reason can quote a parser's or a rule's words; a log line keeps only its start.
MAX_REASON = 160


@dataclass(frozen=True)
class Processed:
    """A message's result with its timings, in seconds."""

    delivery: Delivery
    outcome: Outcome
    parse_s: float
    store_s: float  # classify + thread + store + react, inside the batch transaction
    commit_s: float  # this message's share of its batch's commit

    @property
    def total_s(self) -> float:
        return self.parse_s + self.store_s + self.commit_s

    def fields(self) -> dict[str, Any]:
        """The line's structured fields, in reading order."""
        outcome = self.outcome
        fields: dict[str, Any] = {
            "mailbox": self.delivery.mailbox,
            "folder": self.delivery.folder,
            "uid": self.delivery.uid,
            "message_id": outcome.message_id or None,
            "case": outcome.case_token.strip("[]") if outcome.case_token else None,  # SUP-12
            "new_case": outcome.new_case,
            "outcome": outcome.status,
            "classification": outcome.classification or None,
            "ack": outcome.ack_queued,
            "total_ms": _ms(self.total_s),
            "parse_ms": _ms(self.parse_s),
            "store_ms": _ms(self.store_s),
        }
        if outcome.reason and outcome.status != "stored":
            fields["reason"] = outcome.reason[:MAX_REASON]
        return fields


def timed(func: Callable[..., T], *args: Any) -> tuple[T, float]:
    """``func(*args)`` and the seconds it took."""
    started = time.perf_counter()
    result = func(*args)
    return result, time.perf_counter() - started


def report_batch(deliveries: list[Delivery], parse_s: list[float],
                 stored: list[tuple[Outcome, float]], commit_s: float,
                 observe: Callable[[Processed], None] | None = None) -> None:
    """Log (and hand to ``observe``) each message of a batch that has just committed.

    ``stored`` pairs each outcome with the seconds its pipeline run took.
    """
    share = commit_s / max(1, len(stored))
    for delivery, parse, (outcome, store) in zip(deliveries, parse_s, stored):
        item = Processed(delivery, outcome, parse, store, share)
        log.info("message processed", extra=item.fields())
        if observe is not None:
            try:
                observe(item)
            except Exception:  # counting must never undo or stop mail that is committed
                log.exception("observer failed on message uid=%s", delivery.uid)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
