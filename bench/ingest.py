"""Ingest benchmark: mailbot end to end against the fetch+parse floor, on one Dovecot mailbox.

    .venv/bin/python bench/ingest.py [--n 2000] [--seed 1] [--no-legacy-8bit]

1. ``../shared/bench/gen_mailbox.py`` writes the reference workload into a Maildir.
2. A private Dovecot on a free loopback port (the one the tests use) gets it by APPEND.
3. The floor: imapclient fetch (BODY.PEEK[] in batches of 100) + mail-parser parse of
   every message, in one process — what any Python tool has to pay.
4. mailbot: ``drain`` over the same mailbox — fetch → parse → classify → thread →
   store → ack queued, committed with the IMAP checkpoint, flags set after commit.
   (SMTP sending is not part of ingest; acks stay queued.)
Both run on the same mailbox in the same run; the result is printed as JSON and
appended to ``bench/results.jsonl``. Numbers go into bench/README.md by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import logging

import mailparser

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from factories import config_data  # noqa: E402
from servers import Dovecot, find_dovecot, imap_append_many, imap_connect  # noqa: E402

from mailbot.clock import SystemClock  # noqa: E402
from mailbot.config import config_from_dict  # noqa: E402
from mailbot.daemon import App  # noqa: E402
from mailbot.drain import drain  # noqa: E402


def generate(n: int, seed: int, legacy: bool, where: Path) -> list[bytes]:
    maildir = where / "Maildir"
    cmd = [sys.executable, str(REPO.parent / "shared" / "bench" / "gen_mailbox.py"), "--n", str(n),
           "--seed", str(seed), "--maildir", str(maildir)]
    if not legacy:
        cmd.append("--no-legacy-8bit")
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return [p.read_bytes() for p in sorted((maildir / "new").iterdir())]


def floor(account: object, n: int) -> float:
    started = time.perf_counter()
    client = imap_connect(account)  # type: ignore[arg-type]
    client.select_folder("INBOX", readonly=True)
    uids = client.search(["ALL"])
    parsed = 0
    for start in range(0, len(uids), 100):
        for data in client.fetch(uids[start:start + 100], ["BODY.PEEK[]"]).values():
            mailparser.parse_from_bytes(data[b"BODY[]"])
            parsed += 1
    client.logout()
    assert parsed == n, (parsed, n)
    return n / (time.perf_counter() - started)


def mailbot_ingest(account: object, work: Path, n: int) -> tuple[float, dict[str, int]]:
    data = config_data(work, mailboxes=[{
        "name": "bench", "address": "support@helpdesk.example", "kind": "imap",
        "imap_host": account.host, "imap_port": account.port,  # type: ignore[attr-defined]
        "imap_ssl": False, "username": account.username,  # type: ignore[attr-defined]
        "password_env": "MAILBOT_BENCH_PW"}])
    os.environ["MAILBOT_BENCH_PW"] = account.password  # type: ignore[attr-defined]
    app = App.build(config_from_dict(data, source=work / "mailbot.toml"), clock=SystemClock())
    app.db.upgrade()
    source = app.source(app.config.mailboxes[0])
    started = time.perf_counter()
    source.open()
    if os.environ.get("MAILBOT_BENCH_PROFILE"):
        # pyinstrument samples, so the profile barely slows the run it describes (cProfile
        # tripled the time of SQLAlchemy's many small calls); the workers are not sampled.
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        with profiler:
            report = drain(app.pipeline, app.db, source)
        print(profiler.output_text(unicode=True, show_all=False), file=sys.stderr)
    else:
        report = drain(app.pipeline, app.db, source)
    source.close()
    elapsed = time.perf_counter() - started
    statuses = {s: report.count(s) for s in ("stored", "duplicate", "dropped", "quarantined")}
    assert sum(statuses.values()) == n, statuses
    return n / elapsed, statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-legacy-8bit", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile the mailbot run")
    args = parser.parse_args()
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)
    if args.profile:
        os.environ["MAILBOT_BENCH_PROFILE"] = "1"
    binary = find_dovecot()
    if binary is None:
        sys.exit("bench: dovecot is not installed (make system-deps)")
    with tempfile.TemporaryDirectory(prefix="mailbot-bench-") as tmp:
        work = Path(tmp)
        messages = generate(args.n, args.seed, not args.no_legacy_8bit, work)
        with Dovecot(work / "dovecot", binary=binary) as server:
            account = server.new_account()
            imap_append_many(account, messages)
            floor_rate = floor(account, args.n)
            rate, statuses = mailbot_ingest(account, work / "mailbot", args.n)
    result = {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "n": args.n, "seed": args.seed, "legacy_8bit": not args.no_legacy_8bit,
        "floor_msg_s": round(floor_rate, 1), "mailbot_msg_s": round(rate, 1),
        "ratio_to_floor": round(rate / floor_rate, 2), "outcomes": statuses,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    with (REPO / "bench" / "results.jsonl").open("a") as log:
        log.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
