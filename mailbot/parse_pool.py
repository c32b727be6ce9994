"""Parsing in worker processes: spread over the cores, and each message on a time limit.

Parsing MIME is the pipeline's CPU-bound stage and the one a hostile message can
make slow (deeply nested parts, pathological encodings). Running it in a pebble
process pool does two things the GIL and a thread cannot: a batch is parsed on
several cores while the daemon's main thread stores the previous batch, and a
message that takes longer than ``[processing] time_limit`` has its worker killed
and comes back as a ParseError, so it is quarantined with that reason and raw
bytes instead of stalling its mailbox (DESIGN.md, "fetch").

One pool serves the whole process (every mailbox watcher, and a reloaded config
with the same number of workers). Workers start from a forkserver, not by forking
the daemon, whose threads may hold locks at the moment of a fork.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, TimeoutError
from datetime import datetime

from pebble import ProcessExpired, ProcessPool

from mailbot.config import Config
from mailbot.context import Delivery
from mailbot.errors import ParseError
from mailbot.message import Inbound
from mailbot.store.blobs import compress_raw

log = logging.getLogger("mailbot.pipeline")
# mail-parser logs every part it does not handle, with header values; in a worker that
# would go to the daemon's stderr unformatted.
logging.getLogger("mailparser").setLevel(logging.CRITICAL)

Parsed = Inbound | ParseError
Timed = tuple[Parsed, float]  # and the seconds the parse took (for the per-message log line)

_lock = threading.Lock()
_pool: ProcessPool | None = None
_pool_workers = 0


def parse_bytes(raw: bytes, received_at: datetime | None, max_size: int,
                synth_domain: str) -> Parsed:
    """Parse, or say why not; never raises, so a worker always has an answer to return."""
    from mailbot.parse import parse

    if len(raw) > max_size:
        return ParseError(f"message of {len(raw)} bytes exceeds storage.max_message_size "
                          f"({max_size})")
    try:
        return parse(raw, received_at=received_at, synth_domain=synth_domain)
    except ParseError as exc:
        return exc


def parse_timed(raw: bytes, received_at: datetime | None, max_size: int,
                synth_domain: str, compress: bool = False) -> Timed:
    """Parse (and, in a worker, gzip the raw bytes for the blob store); and how long it took."""
    started = time.perf_counter()
    parsed = parse_bytes(raw, received_at, max_size, synth_domain)
    if compress and isinstance(parsed, Inbound):
        parsed.raw_gzip = compress_raw(raw)
    return parsed, time.perf_counter() - started


class Parser:
    """Parses batches for one configuration: in the pool, or inline when ``workers = 0``."""

    def __init__(self, config: Config) -> None:
        self.workers = config.processing.worker_count
        self.time_limit = config.processing.time_limit_s
        self.max_size = config.storage.max_message_size
        self.synth_domain = config.smtp.from_address.partition("@")[2]

    def submit(self, raws: Sequence[tuple[bytes, Delivery]]) -> list[Future[Timed] | Timed]:
        """Start parsing a batch; ``collect`` waits for it. Inline mode parses right here."""
        if self.workers == 0:
            return [parse_timed(raw, d.received_at, self.max_size, self.synth_domain)
                    for raw, d in raws]
        pool = _shared_pool(self.workers)
        return [pool.schedule(parse_timed, args=(raw, d.received_at, self.max_size,
                                                 self.synth_domain, True),
                              timeout=self.time_limit)
                for raw, d in raws]

    def collect(self, pending: list[Future[Timed] | Timed]) -> list[Timed]:
        return [self._result(item) for item in pending]

    def parse(self, raws: Sequence[tuple[bytes, Delivery]]) -> list[Parsed]:
        return [parsed for parsed, _took in self.collect(self.submit(raws))]

    def _result(self, item: Future[Timed] | Timed) -> Timed:
        if not isinstance(item, Future):
            return item
        try:
            return item.result()
        except TimeoutError:
            return ParseError(f"parsing took longer than the processing time limit "
                              f"({self.time_limit:g} s); the parser was stopped"), self.time_limit
        except ProcessExpired as exc:
            return ParseError(f"the parser process died on this message "
                              f"(exit code {exc.exitcode})"), 0.0


def _shared_pool(workers: int) -> ProcessPool:
    global _pool, _pool_workers
    with _lock:
        if _pool is not None and _pool_workers == workers and _pool.active:
            return _pool
        if _pool is not None:
            _pool.close()  # tasks already given to it still finish
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["mailbot.parse_pool", "mailbot.parse"])
        _pool, _pool_workers = ProcessPool(max_workers=workers, context=context), workers
        log.debug("parse pool: %d worker processes", workers)
        return _pool


def shutdown() -> None:
    """Stop the workers (the daemon's exit; tests)."""
    global _pool
    with _lock:
        if _pool is not None:
            _pool.stop()
            _pool.join(timeout=5)
            _pool = None


atexit.register(shutdown)
