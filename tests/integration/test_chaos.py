"""Crash safety under SIGKILL, a Dovecot crash and an SMTP outage (issue 8), bounded for the suite.

The harness lives in bench/chaos.py so the big run (thousands of messages, a hundred
kills) is the very same code; here it is ~300 messages and ~20 kills.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaos import run_chaos

pytestmark = pytest.mark.integration


def test_sigkill_chaos_loses_and_duplicates_nothing(tmp_path: Path, dovecot: Any,
                                                    imap_account: Any, smtp_server: Any) -> None:
    # SIGKILLed ~20 times while draining (plus a Dovecot crash and an SMTP outage), the daemon
    # still turns every message into exactly one case with exactly one acknowledgement.
    started = time.monotonic()
    result = run_chaos(tmp_path, dovecot, imap_account, smtp_server, messages=300, kills=20,
                       seed=8, claim_lease="2s", drain_timeout=90, say=print)
    print(result.summary())
    assert result.ok, "\n".join([result.summary(), *result.problems, result.log_tail])
    assert result.kills == 20 and result.acks_received >= result.new_requests > 200
    assert time.monotonic() - started < 150
