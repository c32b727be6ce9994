"""Scheduler benchmark: one ``tick`` over 100 000 open cases, on SQLite and PostgreSQL.

    .venv/bin/python bench/tick.py [--cases 100000] [--db sqlite|postgresql|both]
                                   [--due 0,100,1000] [--repeat 5]

DESIGN.md ("Targets"): "Scheduler: a tick over 100 000 open cases < 0.5 s on SQLite
and PostgreSQL".

1. A fresh database: a SQLite file in a temporary directory, or a fresh PostgreSQL
   database created on ``MAILBOT_TEST_PG`` (default
   ``postgresql+psycopg://postgres@127.0.0.1:5432/test``, as tests/conftest.py) and
   dropped ``WITH (FORCE)`` afterwards; migrated by ``Database(url).upgrade()``.
2. Seeded with SQLAlchemy Core executemany in chunks: ``--cases`` open, unanswered
   cases (opened over the last 3 days, deadlines over the next 1–6 days, one of 5
   managers each) and their SLA jobs as ``schedule.sla.plan`` writes them — reminder +
   escalation for the preliminary and the detailed deadline — plus one follow-up job
   each: 5 pending jobs per case, all due in the future.
3. For each ``--due`` N: ``--repeat`` times, N jobs that are due right now are inserted
   (not timed; the same kind mix as the seed: 2 reminders, 2 escalations, 1 follow-up
   per 5, on N distinct cases, keys that match the case's deadlines so they really
   fire), then ``mailbot.schedule.runner.tick(db, config, secret, now)`` is timed.
   N = 0 is the steady-state cost of a tick (finding nothing to do); N > 0 includes
   firing them — one outbox row and one event per fired job. Every tick is checked
   to have fired exactly N jobs.
4. EXPLAIN of the due-jobs query is recorded. The result is printed as JSON and a
   table and appended to ``bench/results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, insert, select, text

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from factories import config_data

from mailbot.config import Config, config_from_dict, security_secret
from mailbot.db.models import Case, Job, Outbox
from mailbot.db.session import Database
from mailbot.schedule.runner import tick

PG_ADMIN = os.environ.get("MAILBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MANAGERS = [f"manager{i}@staff.example" for i in range(5)]
CHUNK = 5000
# Same mix as the seed (per case: 2 reminders, 2 escalations, 1 follow-up).
DUE_KINDS = [("sla.reminder", "preliminary"), ("sla.escalation", "preliminary"),
             ("sla.reminder", "detailed"), ("sla.escalation", "detailed"), ("followup", None)]


def make_config(work: Path, url: str) -> tuple[Config, bytes | None]:
    (work / "secret").write_text(secrets.token_hex(32) + "\n")
    data = config_data(
        work, database={"url": url},
        managers=[{"email": m, "name": f"Manager {i}", "timezone": "Europe/Kyiv"}
                  for i, m in enumerate(MANAGERS)],
        security={"secret_file": str(work / "secret")},
        escalation={"address": "escalations@staff.example"},
    )
    config = config_from_dict(data, source=work / "mailbot.toml")
    return config, security_secret(config)


@contextmanager
def fresh_database(kind: str, work: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{work / 'tick.db'}"
        return
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = f"mailbot_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def _chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _case_times(i: int, now: datetime) -> tuple[datetime, datetime, datetime]:
    # Opened over the last 3 days; preliminary due in 1–3 days, detailed 2–3 days later.
    opened = now - timedelta(seconds=(i * 7919) % (3 * 86400))
    preliminary = now + timedelta(days=1, seconds=(i * 104729) % (2 * 86400))
    detailed = preliminary + timedelta(days=2, seconds=(i * 1299709) % 86400)
    return opened, preliminary, detailed


def seed(db: Database, cases: int, now: datetime) -> dict[str, float]:
    timings: dict[str, float] = {}

    def case_rows() -> Iterator[dict[str, Any]]:
        for i in range(1, cases + 1):
            opened, preliminary, detailed = _case_times(i, now)
            yield {"id": i, "number": i, "token": f"SUP-{i:07d}",
                   "subject": f"Request number {i}: the printer is on fire again",
                   "status": "open", "mailbox": "support",
                   "customer_email": f"customer{i}@customer{i % 997}.example",
                   "customer_name": f"Customer {i}", "manager_email": MANAGERS[i % len(MANAGERS)],
                   "service_level": "standard", "language": "en", "timezone": "Europe/Kyiv",
                   "timezone_source": "default", "opened_at": opened,
                   "preliminary_due": preliminary, "detailed_due": detailed,
                   "acknowledged_at": opened + timedelta(seconds=5), "first_response_at": None,
                   "detailed_at": None, "closed_at": None, "last_customer_at": opened,
                   "updated_at": opened, "organization": None, "paused_at": None}

    def job_rows() -> Iterator[dict[str, Any]]:
        for i in range(1, cases + 1):
            opened, preliminary, detailed = _case_times(i, now)
            for which, due in (("preliminary", preliminary), ("detailed", detailed)):
                detail = {"deadline": which, "due": due.isoformat()}
                remind = opened + (due - opened) * 0.75
                if remind <= now:
                    remind = now + timedelta(minutes=30 + i % 600)
                for kind, at in (("sla.reminder", remind), ("sla.escalation", due)):
                    yield {"case_id": i, "kind": kind, "key": f"{kind}:{i}:{which}:{due.isoformat()}",
                           "due_at": at, "status": "pending", "detail": detail,
                           "claimed_until": None, "created_at": opened, "done_at": None,
                           "result": None}
            follow = now + timedelta(hours=6, seconds=(i * 7877) % (2 * 86400))
            yield {"case_id": i, "kind": "followup", "key": f"followup:{i}:{follow.isoformat()}",
                   "due_at": follow, "status": "pending",
                   "detail": {"since": opened.isoformat(), "timezone": "Europe/Kyiv"},
                   "claimed_until": None, "created_at": opened, "done_at": None, "result": None}

    for name, table, rows in (("cases", Case.__table__, case_rows()),
                              ("jobs", Job.__table__, job_rows())):
        started = time.perf_counter()
        with db.engine.begin() as conn:
            for batch in _chunks(rows):
                conn.execute(insert(table), batch)
        timings[name] = time.perf_counter() - started
    started = time.perf_counter()
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(text("SELECT setval(pg_get_serial_sequence('cases', 'id'), "
                              "(SELECT max(id) FROM cases))"))
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("ANALYZE"))
    timings["analyze"] = time.perf_counter() - started
    return timings


def add_due(db: Database, n: int, cases: int, now: datetime, run: int) -> None:
    """N jobs due right now (due a minute to an hour ago), on N distinct cases."""
    if n == 0:
        return
    rows = []
    stride = max(1, cases // n)
    for j in range(n):
        i = 1 + (j * stride + run * 7) % cases
        kind, which = DUE_KINDS[j % len(DUE_KINDS)]
        opened, preliminary, detailed = _case_times(i, now)
        due_at = now - timedelta(seconds=60 + j % 3600)
        if kind == "followup":
            detail: dict[str, Any] = {"since": opened.isoformat(), "timezone": "Europe/Kyiv"}
            key = f"followup:{i}:bench{run}:{due_at.isoformat()}"
        else:
            due = preliminary if which == "preliminary" else detailed
            detail = {"deadline": which, "due": due.isoformat()}
            key = f"{kind}:{i}:{which}:{due.isoformat()}:bench{run}"
        rows.append({"case_id": i, "kind": kind, "key": key, "due_at": due_at,
                     "status": "pending", "detail": detail, "claimed_until": None,
                     "created_at": now - timedelta(days=1), "done_at": None, "result": None})
    with db.engine.begin() as conn:
        conn.execute(insert(Job.__table__), rows)


def explain(db: Database, now: datetime) -> list[str]:
    query = (select(Job).where(Job.status == "pending", Job.due_at <= now)
             .order_by(Job.due_at, Job.id).limit(500))
    if db.dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)
    compiled = query.compile(dialect=db.engine.dialect)
    params = dict(compiled.params)
    for key, value in params.items():  # what UTCDateTime binds
        if isinstance(value, datetime) and db.dialect == "sqlite":
            params[key] = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    if db.dialect == "postgresql":
        sql = "EXPLAIN (ANALYZE, BUFFERS) " + str(compiled)
    else:
        sql = "EXPLAIN QUERY PLAN " + str(compiled)
    with db.engine.begin() as conn:
        raw = conn.connection.driver_connection
        cursor = raw.cursor()  # type: ignore[union-attr]
        cursor.execute(sql, params if db.dialect == "postgresql" else
                       [params[k] for k in compiled.positiontup or []])
        rows = cursor.fetchall()
    if db.dialect == "postgresql":
        return [r[0] for r in rows]
    return [" ".join(str(c) for c in r[1:]) for r in rows]


def bench_one(kind: str, cases: int, due_counts: list[int], repeat: int) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory(prefix="mailbot-bench-tick-") as tmp:
        work = Path(tmp)
        with fresh_database(kind, work) as url:
            config, secret = make_config(work, url)
            db = Database(url)
            try:
                started = time.perf_counter()
                db.upgrade()
                migrate_s = time.perf_counter() - started
                started = time.perf_counter()
                seeded = seed(db, cases, now)
                seed_s = time.perf_counter() - started
                with db.engine.connect() as conn:
                    jobs = conn.scalar(select(func.count()).select_from(Job.__table__))
                print(f"{kind}: seeded {cases} cases + {jobs} jobs in {seed_s:.1f} s",
                      file=sys.stderr)
                plan = explain(db, now)
                results: dict[str, Any] = {}
                run = 0
                for n in due_counts:
                    times = []
                    for _ in range(repeat):
                        run += 1
                        add_due(db, n, cases, now, run)
                        started = time.perf_counter()
                        report = tick(db, config, secret, now)
                        times.append(time.perf_counter() - started)
                        assert len(report.fired) == n and not report.cancelled, \
                            (n, len(report.fired), report.cancelled[:3])
                    results[str(n)] = {"median_s": round(statistics.median(times), 4),
                                       "max_s": round(max(times), 4),
                                       "min_s": round(min(times), 4), "runs": len(times)}
                    print(f"{kind}: {n} due: median {statistics.median(times):.3f} s, "
                          f"max {max(times):.3f} s", file=sys.stderr)
                with db.engine.connect() as conn:
                    outbox = conn.scalar(select(func.count()).select_from(Outbox.__table__))
                expected = sum(due_counts) * repeat
                assert outbox == expected, (outbox, expected)
            finally:
                db.dispose()
    return {"db": kind, "cases": cases, "jobs_seeded": jobs, "migrate_s": round(migrate_s, 2),
            "seed_s": round(seed_s, 1), "seed_detail_s": {k: round(v, 1) for k, v in seeded.items()},
            "ticks": results, "outbox_rows_queued": outbox, "explain_due_query": plan}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--due", default="0,100,1000", help="comma-separated due-job counts")
    parser.add_argument("--repeat", type=int, default=5, help="ticks per due count")
    args = parser.parse_args()
    # Escalations log a warning each; keep the output readable (the handler still runs).
    logging.getLogger("mailbot.schedule").setLevel(logging.ERROR)
    due_counts = [int(x) for x in args.due.split(",") if x.strip()]
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    target = 0.5
    runs = [bench_one(kind, args.cases, due_counts, args.repeat) for kind in kinds]
    result = {
        "bench": "tick",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cases": args.cases, "repeat": args.repeat, "target_s": target,
        "runs": runs, "python": platform.python_version(), "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=2))
    print()
    print("| db | cases | due jobs | median tick | max tick | target < 0.5 s | seed |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for run in runs:
        for n, t in run["ticks"].items():
            verdict = "met" if t["max_s"] < target else (
                "median met" if t["median_s"] < target else "MISSED")
            print(f"| {run['db']} | {run['cases']} | {n} | {t['median_s'] * 1000:.0f} ms | "
                  f"{t['max_s'] * 1000:.0f} ms | {verdict} | {run['seed_s']} s |")
    with (REPO / "bench" / "results.jsonl").open("a") as log:
        log.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
