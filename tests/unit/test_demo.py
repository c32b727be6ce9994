"""`mailbot demo`: the whole loop with no servers, as a new user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_runs_the_loop_and_says_where_to_look(tmp_path: Path) -> None:
    # The demo opens SUP-1, acks, relays the manager's answer, keeps the note, ignores the OOO.
    target = tmp_path / "demo"
    for _ in range(2):  # re-running replaces the previous demo directory
        result = subprocess.run([sys.executable, "-m", "mailbot", "demo", "--dir", str(target)],
                                cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "case [SUP-1] opened" in out
    assert "acknowledgement to Olena" in out and "(Europe/Kyiv)" in out
    assert ("9 messages (customer, ack, manager_new_case, staff, staff_note, relay, customer, "
            "auto_reply, manager_update); 4 mail(s) went out") in out
    assert "--config demo/mailbot.toml cases show SUP-1" in out
    mails = {p.name.split(".")[1]: p.read_bytes() for p in (target / "sent").glob("*.eml")}
    assert set(mails) == {"ack", "new", "relay", "upd"}
    assert b"Auto-Submitted: auto-replied" in mails["ack"]
    assert b"orange tape" in mails["relay"]
    assert b"toner complaint" not in mails["relay"] and b"assigned to you" not in mails["relay"]


def test_demo_refuses_to_clobber_other_directories(tmp_path: Path) -> None:
    # A --dir that exists but was not made by the demo is left alone (exit non-zero).
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "data.txt").write_text("keep me")
    result = subprocess.run([sys.executable, "-m", "mailbot", "demo", "--dir",
                             str(tmp_path / "precious")], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode != 0
    assert (tmp_path / "precious" / "data.txt").read_text() == "keep me"
