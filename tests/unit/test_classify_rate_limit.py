"""The per-sender acknowledgement rate limit ([loop_protection]), on the Maildir + directory harness."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from factories import T0, deliver, make_app, make_config, make_message
from mailbot.config import config_from_dict
from mailbot.daemon import App, run_once
from mailbot.db.models import Case, Event, Outbox
from mailbot.errors import ConfigError
from factories import config_data


def inbox(app: App) -> Path:
    assert app.config.mailboxes[0].path is not None
    return Path(app.config.mailboxes[0].path)


def new_request(app: App, n: int, sender: str = "robot@helpdesk.test", minutes: int = 0) -> None:
    deliver(inbox(app), make_message(sender=sender, subject=f"Ticket {n} received",
                                     message_id=f"<t{n}.{sender}>"), f"{sender}-{n}",
            at=T0 + timedelta(minutes=minutes))


def acks_to(app: App, address: str) -> int:
    with app.db.session() as session:
        return sum(1 for row in session.scalars(select(Outbox).where(Outbox.kind == "ack"))
                   if address in row.to_addrs)


def test_default_limit_is_three_acks_per_hour(tmp_path: Path) -> None:
    # The 4th new case from one sender within an hour is recorded but not acknowledged, with the reason.
    app = make_app(make_config(tmp_path))
    for n in range(4):
        new_request(app, n, minutes=n * 10)
    outcomes = run_once(app).drained[0].outcomes
    assert [o.new_case for o in outcomes] == [True] * 4
    assert [o.ack_queued for o in outcomes] == [True, True, True, False]
    assert acks_to(app, "robot@helpdesk.test") == 3
    with app.db.session() as session:
        case = session.scalar(select(Case).where(Case.number == 4))
        assert case is not None
        (event,) = session.scalars(select(Event).where(Event.case_id == case.id,
                                                       Event.kind == "reply_suppressed"))
    assert "rate limit" in event.detail["reason"] and "max_acks_per_sender = 3" in \
        event.detail["reason"]


def test_limit_is_per_sender_and_per_window(tmp_path: Path) -> None:
    # Another sender is not affected, and the same sender is answered again once the window passed.
    app = make_app(make_config(tmp_path, loop_protection={"max_acks_per_sender": 1,
                                                         "window": "30m"}))
    new_request(app, 1)
    new_request(app, 2, minutes=5)
    new_request(app, 3, sender="human@customer.test", minutes=6)
    new_request(app, 4, minutes=40)
    outcomes = run_once(app).drained[0].outcomes
    by_id = {o.message_id: o.ack_queued for o in outcomes}
    assert by_id == {"<t1.robot@helpdesk.test>": True, "<t2.robot@helpdesk.test>": False,
                     "<t3.human@customer.test>": True, "<t4.robot@helpdesk.test>": True}


def test_zero_disables_acknowledgements(tmp_path: Path) -> None:
    # max_acks_per_sender = 0 records every case and answers none.
    app = make_app(make_config(tmp_path, loop_protection={"max_acks_per_sender": 0}))
    new_request(app, 1)
    outcome = run_once(app).drained[0].outcomes[0]
    assert outcome.new_case and not outcome.ack_queued


@pytest.mark.parametrize(("section", "key"), [
    ({"max_acks_per_sender": -1}, "loop_protection.max_acks_per_sender"),
    ({"window": "soon"}, "loop_protection.window"),
    ({"bounce_suppress": "0d"}, "loop_protection.bounce_suppress"),
    ({"max_ack_per_sender": 3}, "loop_protection.max_ack_per_sender"),
])
def test_bad_loop_protection_config_is_refused(tmp_path: Path, section: dict[str, object],
                                                key: str) -> None:
    # A wrong value or a misspelt key in [loop_protection] fails at start, naming the key.
    with pytest.raises(ConfigError) as caught:
        config_from_dict(config_data(tmp_path, loop_protection=section),
                         source=tmp_path / "mailbot.toml")
    assert caught.value.key == key



def test_reply_to_our_own_address_is_not_answered(tmp_path: Path) -> None:
    # A customer mail with Reply-To: support@ opens a case but mailbot does not write to itself.
    app = make_app(make_config(tmp_path))
    deliver(inbox(app), make_message(Reply_To="Support <support@example.test>"), "a")
    outcome = run_once(app).drained[0].outcomes[0]
    assert outcome.new_case and not outcome.ack_queued
    with app.db.session() as session:
        event = session.scalar(select(Event).where(Event.kind == "reply_suppressed"))
    assert event is not None and "mailbot's own" in event.detail["reason"]


def test_limit_matches_the_address_exactly_in_sql(tmp_path: Path) -> None:
    # The SQL prefilter on the stored JSON must neither miss a mixed-case address nor let
    # LIKE wildcards in an address ("_" matches any character) count someone else's acks.
    app = make_app(make_config(tmp_path, loop_protection={"max_acks_per_sender": 1}))
    new_request(app, 1, sender="Team_A@Helpdesk.test")
    new_request(app, 2, sender="teamxa@helpdesk.test", minutes=1)
    new_request(app, 3, sender="team_a@helpdesk.test", minutes=2)
    acked = {o.message_id: o.ack_queued for o in run_once(app).drained[0].outcomes}
    assert acked == {"<t1.Team_A@Helpdesk.test>": True, "<t2.teamxa@helpdesk.test>": True,
                     "<t3.team_a@helpdesk.test>": False}
