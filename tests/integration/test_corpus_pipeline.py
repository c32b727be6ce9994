"""Every message of the shared corpus through the real pipeline: processed or quarantined, never a crash."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from factories import config_data, deliver, imap_mailbox, make_app, smtp_section
from mailbot.config import config_from_dict
from mailbot.daemon import App, run_once
from mailbot.db.models import Quarantine
from mailbot.pipeline import Outcome
from servers import imap_append_many

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
NOT_MAIL = {"COPYING", "MANIFEST.md", ".gitattributes", "MIT-LICENSE"}
FINAL = {"stored", "duplicate", "dropped", "quarantined"}


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"shared corpus missing at {CORPUS}")
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return sorted(p for p in CORPUS.rglob("*")
                  if p.is_file() and p.name not in NOT_MAIL
                  and not p.name.startswith(("LICENSE", "README")))


def check(outcomes: list[Outcome], app: App, expected: int) -> Counter[str]:
    """Every message reached a final state; quarantined ones have a reason and a row."""
    assert len(outcomes) == expected
    assert {o.status for o in outcomes} <= FINAL
    for outcome in outcomes:
        if outcome.status == "quarantined":
            assert outcome.reason
            # Only mail that is not mail may be refused: no stage may have raised.
            assert outcome.reason.startswith("parse:"), outcome.reason
    with app.db.session() as session:
        reasons = list(session.scalars(select(Quarantine.reason)))
    assert all(reasons)
    return Counter(o.status for o in outcomes)


def test_whole_corpus_through_maildir_pipeline(tmp_path: Path) -> None:
    # All ~300 corpus files go through fetch→store; each is stored, duplicate, dropped or quarantined.
    files = corpus_files()
    assert len(files) > 250
    app = make_app(config_from_dict(config_data(tmp_path), source=tmp_path / "mailbot.toml"))
    inbox = Path(str(app.config.mailboxes[0].path))
    for index, path in enumerate(files):
        deliver(inbox, path.read_bytes(), f"{index:04d}")
    report = run_once(app)
    statuses = check(report.drained[0].outcomes, app, len(files))
    assert statuses["stored"] > 200
    print(f"\ncorpus through the pipeline: {dict(statuses)}; outbox {len(report.flushed.sent)} sent")
    # Nothing is left behind for the next pass: processed or moved to the quarantine folder.
    assert run_once(app).drained[0].outcomes == []


@pytest.mark.integration
def test_corpus_sample_through_dovecot(tmp_path: Path, imap_account: Any, smtp_server: Any) -> None:
    # Twenty varied corpus files APPENDed to Dovecot are each processed or quarantined.
    files = corpus_files()
    sample = files[:: max(1, len(files) // 20)][:20]
    imap_append_many(imap_account, [p.read_bytes() for p in sample])
    data = config_data(tmp_path, mailboxes=[imap_mailbox(imap_account)],
                       smtp=smtp_section(smtp_server))
    app = make_app(config_from_dict(data, source=tmp_path / "mailbot.toml"))
    report = run_once(app)
    assert report.ok
    check(report.drained[0].outcomes, app, len(sample))
