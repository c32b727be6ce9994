"""Crash-restart chaos: `mailbot run` SIGKILLed at random moments while it drains real Dovecot.

Why: support mail is a promise. A message that arrived must become exactly one case with
exactly one acknowledgement, whatever happens to the process or the servers. This drives a
real daemon process (SystemClock, real SQLite, real Dovecot, an aiosmtpd sink) through
random SIGKILLs and restarts, one Dovecot crash and one SMTP outage, while mail keeps
arriving in bursts; then it checks the database and what the SMTP server received.

The test suite runs a bounded run (tests/integration/test_chaos.py); the big run is

    .venv/bin/python bench/chaos.py --messages 2000 --kills 100 [--seed 1]

and its result belongs in bench/README.md ("Crash safety").
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tomli_w

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from factories import config_data, imap_mailbox, make_message, smtp_section
from servers import imap_connect

from mailbot.config import config_from_dict
from mailbot.db.session import Database


@dataclass
class ChaosResult:
    messages: int = 0  # APPENDed (including exact re-deliveries)
    new_requests: int = 0
    kills: int = 0
    seconds: float = 0.0
    acks_received: int = 0
    duplicate_acks: int = 0  # the same Message-ID received more than once (allowed: resends)
    recovered: int = 0  # restarts that found committed mail whose IMAP flags a kill cut short
    problems: list[str] = field(default_factory=list)
    log_tail: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        return (f"chaos: {self.messages} messages ({self.new_requests} new requests), "
                f"{self.kills} SIGKILLs, {self.seconds:.1f}s, {self.acks_received} acks received, "
                f"{self.duplicate_acks} duplicate(s) (same Message-ID resent), "
                f"{self.recovered} restart(s) finished flags a kill cut short, "
                f"{'OK' if self.ok else 'FAILED: ' + '; '.join(self.problems[:5])}")


@dataclass
class _Mail:
    raw: bytes
    message_id: str
    new_request: bool


def _workload(count: int, rng: random.Random) -> list[_Mail]:
    """New requests (distinct senders), follow-ups on earlier ones, exact re-deliveries."""
    mails: list[_Mail] = []
    base = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    while len(mails) < count:
        n = len(mails)
        roll = rng.random()
        earlier = [m for m in mails if m.new_request]
        if roll < 0.1 and earlier:
            original = rng.choice(earlier)
            mid = f"<chaos-fu{n}@customer.test>"
            sender = original.raw.split(b"From: ", 1)[1].split(b"\n", 1)[0].decode().strip()
            raw = make_message(sender=sender, subject="Re: request", message_id=mid,
                               body=f"follow-up {n}\n", In_Reply_To=original.message_id,
                               date=base + timedelta(seconds=n))
            mails.append(_Mail(raw, mid, False))
        elif roll < 0.15 and mails:
            mails.append(rng.choice(mails))  # the same bytes delivered twice
        else:
            mid = f"<chaos-{n}@customer{n % 37}.test>"
            raw = make_message(sender=f"Customer {n} <c{n}@customer{n % 37}.test>",
                               subject=f"request {n}", message_id=mid,
                               body=f"Hello,\nrequest number {n}.\n",
                               date=base + timedelta(seconds=n))
            mails.append(_Mail(raw, mid, True))
    return mails


class _Daemon:
    """`python -m mailbot run` as a real process, restartable, its stderr kept in a file."""

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._running_before = 0  # "mailbot running" lines logged before the latest start

    def _running_lines(self) -> int:
        if not self.log_path.exists():
            return 0
        return self.log_path.read_text(errors="replace").count("mailbot running")

    def start(self) -> None:
        self._running_before = self._running_lines()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mailbot", "--config", str(self.config_path), "run"],
                stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def wait_running(self, timeout: float = 30.0) -> None:
        """Until the latest start has its signal handlers (it logged "mailbot running").

        A SIGTERM that lands while Python is still importing kills the process by the
        default action, as it would any program; systemd does not send one before READY.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._running_lines() > self._running_before:
                return
            time.sleep(0.05)

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        self.wait_running()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9


def _append_burst(account: Any, mails: list[_Mail], lock: threading.Lock) -> None:
    """APPEND a burst over one connection; on a dropped connection reconnect and go on.

    An APPEND cut off by a server crash may or may not have been stored; it is sent
    again, which is exactly a re-delivery the idempotency key must absorb.
    """
    pending = list(mails)
    deadline = time.monotonic() + 60
    while pending and time.monotonic() < deadline:
        with lock:
            try:
                client = imap_connect(account)
                try:
                    while pending:
                        client.append("INBOX", pending[0].raw)
                        pending.pop(0)
                finally:
                    client.logout()
            except Exception:  # Dovecot being crashed on purpose; retry below
                pass
        if pending:
            time.sleep(0.2)
    if pending:
        raise RuntimeError(f"{len(pending)} messages could not be appended within 60 s")


def run_chaos(workdir: Path, dovecot: Any, account: Any, sink: Any, *, messages: int = 300,
              kills: int = 20, seed: int = 1, bursts: int = 6, claim_lease: str = "2s",
              drain_timeout: float = 120.0,
              say: Callable[[str], None] = lambda _line: None) -> ChaosResult:
    """Drive the daemon through ``kills`` SIGKILLs while ``messages`` arrive; check the outcome."""
    rng = random.Random(seed)
    result = ChaosResult()
    started = time.monotonic()
    data = config_data(
        workdir,
        mailboxes=[imap_mailbox(account, poll_interval="1s", batch_size=20)],
        smtp=smtp_section(sink, retry_max_delay="1s", claim_lease=claim_lease,
                          stuck_warning_after="3s"),
        loop_protection={"max_acks_per_sender": 1000},
    )
    config_path = workdir / "mailbot.toml"
    config_path.write_text(tomli_w.dumps(data))
    config = config_from_dict(data, source=config_path)
    db = Database(config.database.url)
    db.upgrade()

    workload = _workload(messages, rng)
    result.messages = len(workload)
    new_ids = {m.message_id for m in workload if m.new_request}
    result.new_requests = len(new_ids)
    # Contiguous bursts: a follow-up is never delivered before the request it answers.
    size = -(-len(workload) // bursts)
    chunks = [workload[i:i + size] for i in range(0, len(workload), size)]

    lock = threading.Lock()
    errors: list[BaseException] = []
    all_appended = threading.Event()

    def appender() -> None:
        try:
            for chunk in chunks:
                _append_burst(account, chunk, lock)
                time.sleep(rng.uniform(0.5, 2.0))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            all_appended.set()

    daemon = _Daemon(config_path, workdir / "daemon.log")
    daemon.start()
    feeder = threading.Thread(target=appender, daemon=True)
    feeder.start()
    dovecot_crash_at, smtp_outage_at = kills // 3, (2 * kills) // 3
    for k in range(kills):
        time.sleep(rng.uniform(0.3, 2.5))
        daemon.kill()
        result.kills += 1
        if k == dovecot_crash_at:
            with lock:
                say("chaos: crashing Dovecot (SIGKILL) and starting it again")
                dovecot.kill()
                dovecot.start()
        if k == smtp_outage_at:
            say("chaos: SMTP server down for 3 s")
            sink.stop()
            daemon.start()
            time.sleep(3)
            sink.start()
            continue
        daemon.start()
    say(f"chaos: {result.kills} kills done after {time.monotonic() - started:.1f}s; draining")
    all_appended.wait(120)
    if errors:
        result.problems.append(f"appending failed: {errors[0]}")
    _wait_drained(db, new_ids, deadline=time.monotonic() + drain_timeout)
    code = daemon.terminate()
    if code != 0:
        result.problems.append(f"`mailbot run` exited {code} on SIGTERM")
    result.seconds = time.monotonic() - started
    _check(db, workload, new_ids, sink, result)
    log_text = (workdir / "daemon.log").read_text(errors="replace")
    result.log_tail = "\n".join(log_text.splitlines()[-40:])
    result.recovered = log_text.count("finishing IMAP flags")
    db.dispose()
    say(result.summary())
    return result


def _wait_drained(db: Database, new_ids: set[str], deadline: float) -> None:
    """Until every new request has its case and no ack is left unsent (or the deadline)."""
    from sqlalchemy import func, select

    from mailbot.db.models import Case, Outbox

    while time.monotonic() < deadline:
        with db.session() as session:
            cases = session.scalar(select(func.count(Case.id))) or 0
            open_rows = session.scalar(select(func.count(Outbox.id))
                                       .where(Outbox.status.in_(("pending", "sending")))) or 0
        if cases >= len(new_ids) and open_rows == 0:
            return
        time.sleep(0.2)


def _check(db: Database, workload: list[_Mail], new_ids: set[str], sink: Any,
           result: ChaosResult) -> None:
    from sqlalchemy import func, select

    from mailbot.db.models import Case, Message, Outbox, Quarantine

    problems = result.problems
    with db.session() as session:
        inbound = collections.Counter(session.scalars(
            select(Message.message_id).where(Message.direction == "in")))
        all_ids = {m.message_id for m in workload}
        missing = all_ids - set(inbound)
        if missing:
            problems.append(f"{len(missing)} appended message(s) never recorded, e.g. "
                            f"{sorted(missing)[0]}")
        doubled = [mid for mid, n in inbound.items() if n > 1]
        if doubled:
            problems.append(f"{len(doubled)} message(s) recorded twice, e.g. {doubled[0]}")
        case_of_first = dict(session.execute(
            select(Message.message_id, Message.case_id).where(Message.direction == "in",
                                                              Message.message_id.in_(new_ids))
        ).all())
        cases = session.scalar(select(func.count(Case.id))) or 0
        if cases != len(new_ids) or len(set(case_of_first.values())) != len(new_ids):
            problems.append(f"{cases} cases for {len(new_ids)} new requests")
        acks = list(session.execute(
            select(Outbox.case_id, Outbox.message_id, Outbox.status).where(Outbox.kind == "ack")))
        per_case = collections.Counter(case_id for case_id, _mid, _status in acks)
        without = set(case_of_first.values()) - set(per_case)
        if without:
            problems.append(f"{len(without)} case(s) without an acknowledgement")
        if any(n > 1 for n in per_case.values()):
            problems.append("a case has more than one acknowledgement row")
        unsent = [mid for _case, mid, status in acks if status != "sent"]
        if unsent:
            problems.append(f"{len(unsent)} ack(s) not sent, e.g. {unsent[0]}")
        held = session.scalar(select(func.count(Quarantine.id))) or 0
        if held:
            problems.append(f"{held} message(s) quarantined")
        ack_ids = {mid for _case, mid, _status in acks}
    received: dict[str, list[Any]] = collections.defaultdict(list)
    for message in sink.messages:
        received[str(message.message["Message-ID"])].append(message)
    strangers = set(received) - ack_ids
    if strangers:
        problems.append(f"{len(strangers)} received mail(s) match no ack row, e.g. "
                        f"{sorted(strangers)[0]}")
    never = ack_ids - set(received)
    if never:
        problems.append(f"{len(never)} ack(s) marked sent but never received")
    result.acks_received = sum(len(v) for v in received.values())
    for mid, copies in received.items():
        if len(copies) < 2:
            continue
        result.duplicate_acks += len(copies) - 1
        first = copies[0]
        for other in copies[1:]:
            same = (other.rcpt_tos == first.rcpt_tos
                    and other.message["Subject"] == first.message["Subject"]
                    and other.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
                    == first.message.get_body(("plain",)).get_content())  # type: ignore[union-attr]
            if not same:
                problems.append(f"{mid} received twice with different content")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Example:\n  .venv/bin/python bench/chaos.py "
                                            "--messages 2000 --kills 100")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bursts", type=int, default=20)
    args = parser.parse_args(argv)

    from servers import Dovecot, SmtpSink, find_dovecot

    binary = find_dovecot()
    if binary is None:
        print("chaos: Dovecot is not installed (make system-deps)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mailbot-chaos-") as tmp:
        root = Path(tmp)
        (root / "dovecot").mkdir()
        (root / "run").mkdir()
        with Dovecot(root / "dovecot", binary=binary) as dovecot, SmtpSink() as sink:
            account = dovecot.new_account()
            result = run_chaos(root / "run", dovecot, account, sink, messages=args.messages,
                               kills=args.kills, seed=args.seed, bursts=args.bursts,
                               drain_timeout=600, say=print)
    if not result.ok:
        print(result.log_tail, file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
