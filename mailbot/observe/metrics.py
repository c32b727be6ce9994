"""The Prometheus instruments of one daemon, on a registry of its own.

A private ``CollectorRegistry`` (never the process-global one) keeps two daemons in
one process, or two tests, from adding to each other's numbers. Counters move as
things happen (a batch committed, a flush or a tick finished); what is a question
about the database — how deep the outbox is, how old its oldest row, how overdue the
oldest job — is asked at scrape time with one query each on an indexed column, so
an idle daemon does no work for its metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from mailbot.clock import Clock, as_utc
from mailbot.db.models import Job
from mailbot.db.session import Database
from mailbot.observe.processed import Processed
from mailbot.outbox.worker import FlushReport, outbox_health
from mailbot.schedule.runner import TickReport

log = logging.getLogger("mailbot.metrics")

#: The job kinds that fire when a deadline has passed: each is one SLA breach.
BREACH_KINDS = ("sla.escalation",)
PROCESSING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every instrument; ``state`` gives the database and clock for scrape-time gauges."""

    def __init__(self, state: Callable[[], tuple[Database, Clock]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.messages = Counter(
            "mailbot_messages_processed", "Messages processed, by classification and outcome.",
            ["classification", "outcome"], registry=registry)
        self.processing = Histogram(
            "mailbot_message_processing_seconds",
            "Time from fetched bytes to committed result, per message (parse, store, commit).",
            buckets=PROCESSING_BUCKETS, registry=registry)
        self.acks = Counter("mailbot_acks_sent", "Acknowledgements accepted by the SMTP server.",
                            registry=registry)
        self.sent = Counter("mailbot_mails_sent", "Mail accepted by the SMTP server, by kind.",
                            ["kind"], registry=registry)
        self.smtp_errors = Counter(
            "mailbot_smtp_errors",
            "Failed SMTP deliveries: temporary (the row is retried) or permanent (5xx).",
            ["type"], registry=registry)
        self.imap_errors = Counter(
            "mailbot_imap_errors", "IMAP failures: connect (login, select) or fetch (drain, IDLE).",
            ["mailbox", "stage"], registry=registry)
        self.imap_up = Gauge("mailbot_imap_up", "1 while the mailbox answers, 0 after a failure.",
                             ["mailbox"], registry=registry)
        self.sla_breaches = Counter(
            "mailbot_sla_breaches", "Deadlines missed: escalations fired, by deadline.",
            ["deadline"], registry=registry)
        self.jobs = Counter("mailbot_jobs_fired", "Scheduled jobs fired, by kind.", ["kind"],
                            registry=registry)
        self.scheduler_lag = Gauge(
            "mailbot_scheduler_lag_seconds",
            "How late the oldest job fired by the last scheduler tick was (0: none fired).",
            registry=registry)
        if state is not None:
            registry.register(_DatabaseGauges(state))

    def processed(self, item: Processed) -> None:
        outcome = item.outcome
        self.messages.labels(outcome.classification or "unclassified", outcome.status).inc()
        self.processing.observe(item.total_s)

    def flushed(self, report: FlushReport) -> None:
        for kind in report.sent_kinds:
            self.sent.labels(kind).inc()
            if kind == "ack":
                self.acks.inc()
        for kind in report.smtp_errors:
            self.smtp_errors.labels(kind).inc()

    def ticked(self, report: TickReport, now: datetime) -> None:
        for key in report.fired:
            kind, _, rest = key.partition(":")
            self.jobs.labels(kind).inc()
            if kind in BREACH_KINDS:  # key: kind:case:deadline:due
                self.sla_breaches.labels(rest.split(":")[1] if ":" in rest else "").inc()
        first = report.first_due
        self.scheduler_lag.set(max(0.0, (now - as_utc(first)).total_seconds()) if first else 0.0)

    def imap_reached(self, mailbox: str) -> None:
        self.imap_up.labels(mailbox).set(1)

    def imap_failed(self, mailbox: str, stage: str) -> None:
        self.imap_errors.labels(mailbox, stage).inc()
        self.imap_up.labels(mailbox).set(0)

    def forget(self, mailbox: str) -> None:
        """Drop a removed mailbox's gauge (its error counts stay: counters never go back)."""
        try:
            self.imap_up.remove(mailbox)
        except KeyError:
            pass


class _DatabaseGauges(Collector):
    """Outbox depth and age, and overdue jobs, read when Prometheus scrapes."""

    def __init__(self, state: Callable[[], tuple[Database, Clock]]) -> None:
        self.state = state

    def describe(self) -> Iterator[Metric]:
        return iter(())  # unchecked: the names are only known to collect()

    def collect(self) -> Iterator[Metric]:
        db, clock = self.state()
        now = clock.now()
        try:
            depth, oldest = outbox_health(db, now)
            with db.session() as session:
                due = session.scalar(select(func.min(Job.due_at))
                                     .where(Job.status == "pending", Job.due_at <= now))
        except Exception as exc:  # a scrape must answer even when the database does not
            log.warning("metrics: cannot read the database: %s", exc)
            return
        yield GaugeMetricFamily("mailbot_outbox_depth",
                                "Outgoing mail not yet accepted by SMTP (pending or sending).",
                                value=depth)
        yield GaugeMetricFamily("mailbot_outbox_oldest_age_seconds",
                                "Age of the oldest unsent outbox row (0: empty).",
                                value=max(0.0, oldest.total_seconds()) if oldest else 0.0)
        yield GaugeMetricFamily("mailbot_scheduler_overdue_seconds",
                                "How long the oldest due job has waited to fire (0: none).",
                                value=max(0.0, (now - as_utc(due)).total_seconds()) if due else 0.0)
