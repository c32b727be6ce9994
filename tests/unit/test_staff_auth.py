"""Staff authentication and first-line commands, as pure functions."""

from __future__ import annotations

import pytest

from factories import make_message
from mailbot.commands import parse_commands
from mailbot.parse import parse
from mailbot.staff import (authenticate, signed_message_id, signed_reply_address,
                           verify_message_id, verify_reply_address)

SECRET = b"k" * 32


def auth(raw: bytes, **kw: object):  # type: ignore[no-untyped-def]
    options = {"secret": SECRET, "prefix": "SUP", "trusted_authserv_ids": frozenset({"mx.staff.test"}),
               "staff_domains": frozenset({"staff.test"})}
    options.update(kw)
    return authenticate(parse(raw), **options)  # type: ignore[arg-type]


def test_signed_message_id_round_trip_and_tamper() -> None:
    # A signed id names its case; changing the case number or the mac breaks it.
    message_id = signed_message_id(SECRET, "SUP", 12, "manager_new_case", "example.test")
    assert verify_message_id(SECRET, "SUP", message_id) == 12
    assert verify_message_id(b"other secret", "SUP", message_id) is None
    assert verify_message_id(SECRET, "SUP", message_id.replace("sup-12.", "sup-13.")) is None
    assert verify_message_id(SECRET, "SUP", message_id[:-20] + "0" * 6 + message_id[-14:]) is None


def test_signed_reply_address_round_trip() -> None:
    # The signed reply address names its case and cannot be moved to another one.
    address = signed_reply_address(SECRET, "SUP", 7, "support@example.test")
    assert address.startswith("support+sup-7.") and address.endswith("@example.test")
    assert verify_reply_address(SECRET, "SUP", address) == 7
    assert verify_reply_address(SECRET, "SUP", address.replace("sup-7.", "sup-8.")) is None


def test_reply_referencing_signed_notification_is_staff() -> None:
    # In-Reply-To our signed notification proves the manager's reply and names the case.
    notification = signed_message_id(SECRET, "SUP", 3, "manager_new_case", "example.test")
    result = auth(make_message(sender="olga@staff.test", In_Reply_To=notification))
    assert (result.ok, result.method, result.case_number) == (True, "signed-message-id", 3)


def test_reply_to_signed_address_is_staff() -> None:
    # A client that drops References still proves itself by the signed To: address.
    address = signed_reply_address(SECRET, "SUP", 5, "support@example.test")
    result = auth(make_message(sender="olga@staff.test", to=address))
    assert (result.ok, result.method, result.case_number) == (True, "signed-reply-address", 5)


@pytest.mark.parametrize("headers", [
    {},  # From: alone
    {"In_Reply_To": "<sup-3.manager_new_case.0123456789abcdef.00000000000000000000@example.test>"},
    {"Authentication_Results": "mx.evil.test; dkim=pass header.d=staff.test"},
    {"Authentication_Results": "mx.staff.test; dkim=fail header.d=staff.test"},
    {"Authentication_Results": "mx.staff.test; dkim=pass header.d=evil.test"},
])
def test_forgeries_are_refused(headers: dict[str, str]) -> None:
    # A manager's From: with no proof, a forged signature or an untrusted verdict is not staff.
    assert not auth(make_message(sender="olga@staff.test", subject="Re: [SUP-3]", **headers)).ok


def test_trusted_dkim_pass_is_staff() -> None:
    # Our own border server's dkim=pass for the staff domain authenticates (without a case).
    result = auth(make_message(sender="olga@staff.test",
                               Authentication_Results="mx.staff.test; spf=pass; "
                                                      "dkim=pass header.d=staff.test"))
    assert (result.ok, result.method, result.case_number) == (True, "dkim", None)


def test_commands_parsed_from_leading_lines() -> None:
    # Leading # lines are commands; the rest is the reply; #note swallows everything.
    parsed = parse_commands("#close\n#detailed\n\nAll fixed.\n#not a command here")
    assert [c.name for c in parsed.commands] == ["close", "detailed"]
    assert parsed.text == "All fixed.\n#not a command here" and not parsed.errors
    note = parse_commands("#note call him tomorrow\nhe is angry")
    assert note.has("note") and note.text == "call him tomorrow\nhe is angry"
    assign = parse_commands("#assign Ivan Petrenko\nHanding over.")
    assert assign.argument("assign") == "Ivan Petrenko" and assign.text == "Handing over."


@pytest.mark.parametrize("text", ["#nope\nhello", "#assign\nx", "#close now\nx", "#notes\nsecret",
                                  "#close\n#reopen\nx"])
def test_bad_commands_are_errors(text: str) -> None:
    # Typos and contradictions are errors (then nothing is relayed), never silently ignored.
    assert parse_commands(text).errors
