"""Parsing in worker processes: the same result as inline, and the per-message time limit."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from sqlalchemy import select

from factories import deliver, make_app, make_config, make_message
from mailbot.config import config_from_dict
from mailbot.context import Delivery
from mailbot.daemon import run_once
from mailbot.db.models import Case, Quarantine
from mailbot.errors import ConfigError
from mailbot.message import Inbound
from mailbot.parse_pool import Parser
from factories import config_data


def many_parts(parts: int) -> bytes:
    """A message whose MIME tree takes mail-parser far longer than the limit used below."""
    body = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n" for i in range(parts))
    return ("From: slow@customer.test\r\nTo: support@example.test\r\nSubject: many parts\r\n"
            "Message-ID: <slow@customer.test>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n" + body + "--b--\r\n").encode()


def test_pool_parses_like_the_inline_parser(tmp_path: Path) -> None:
    raws = [(make_message(subject=f"Question {n}", body=f"Body {n}\n", message_id=f"<q{n}@c.test>"),
             Delivery("support")) for n in range(5)]
    pooled = Parser(make_config(tmp_path, processing={"workers": 2})).parse(raws)
    inline = Parser(make_config(tmp_path, processing={"workers": 0})).parse(raws)
    assert all(isinstance(p, Inbound) for p in pooled)
    # The workers also gzip the raw bytes for the blob store, off the database thread.
    assert [gzip.decompress(p.raw_gzip or b"") for p in pooled] == [raw for raw, _ in raws]  # type: ignore[union-attr]
    assert [(p.message_id, p.subject, p.text, p.content_hash) for p in pooled] == \
        [(p.message_id, p.subject, p.text, p.content_hash) for p in inline]  # type: ignore[union-attr]


def test_a_message_over_the_time_limit_is_quarantined_and_the_batch_goes_on(
        tmp_path: Path) -> None:
    app = make_app(make_config(tmp_path, processing={"workers": 1, "time_limit": "50ms"}))
    inbox = Path(app.config.mailboxes[0].path)  # type: ignore[arg-type]
    deliver(inbox, make_message(subject="Before", message_id="<before@c.test>"), "1")
    deliver(inbox, many_parts(8000), "2")
    deliver(inbox, make_message(subject="After", message_id="<after@c.test>"), "3")
    outcomes = run_once(app).drained[0].outcomes
    assert [o.status for o in outcomes] == ["stored", "quarantined", "stored"]
    assert "processing time limit" in outcomes[1].reason
    with app.db.session() as session:
        (held,) = session.scalars(select(Quarantine))
        assert "processing time limit (0.05 s)" in held.reason
        assert app.blobs.get_raw(held.raw_sha256) == many_parts(8000)  # raw bytes kept
        assert sorted(c.subject for c in session.scalars(select(Case))) == ["After", "Before"]


def test_without_workers_the_same_message_is_parsed_in_process(tmp_path: Path) -> None:
    app = make_app(make_config(tmp_path, processing={"workers": 0, "time_limit": "50ms"}))
    inbox = Path(app.config.mailboxes[0].path)  # type: ignore[arg-type]
    deliver(inbox, many_parts(500), "1")
    (outcome,) = run_once(app).drained[0].outcomes
    assert outcome.status == "stored" and outcome.new_case


@pytest.mark.parametrize("value, problem", [(-1, "0 to 64"), ("many", "auto"),
                                            (65, "0 to 64")])
def test_bad_worker_count_names_the_key(tmp_path: Path, value: object, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(config_data(tmp_path, processing={"workers": value}),
                         source=tmp_path / "mailbot.toml")
    assert "processing.workers" in str(caught.value) and problem in str(caught.value)
